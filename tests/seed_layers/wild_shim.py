"""``convbench.adapt`` in a shim file, for forms the source cannot tell: named with ``--impl``
(``convbench check --impl tests/seed_layers/wild_shim.py:conv_nhwc``)."""
import convbench
from wild_functions import conv2d_nhwc, conv2d_step, pool_max_chw

conv_nhwc = convbench.adapt(conv2d_nhwc, layout="NHWC", weight_layout="HWIO")
conv_step = convbench.adapt(conv2d_step, names={"step": "stride", "border": "padding"})
pool_chw = convbench.adapt(pool_max_chw, layout="CHW", names={"f": "kernel_size", "s": "stride"})
