"""Registration, discovery, availability and loading by spec."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convbench
from convbench import ParamError
from convbench.registry import Implementation, get_impl, implementations, load_impl, register


def test_shipped_families_are_discovered():
    names = {i.name for i in implementations("conv2d")}
    assert {"naive", "im2col", "stride_tricks", "torch_cpu", "torch_cuda"} <= names


def test_torch_cuda_says_why_it_is_unavailable():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    info = next(i for i in implementations("conv2d") if i.name == "torch_cuda")
    assert not info.available and "CUDA" in info.reason


def test_register_decorator_instantiates_and_records_metadata():
    @register(op="conv2d", name="test_reg_deco", backend="numpy", deterministic=False, replace=True,
              features={"bias"})
    class Deco(Implementation):
        def forward(self, p, x, w, b):
            return convbench.conv2d(x, w, b)

    impl = get_impl("test_reg_deco")
    assert isinstance(impl, Deco)
    assert impl.info.deterministic is False and impl.info.features == frozenset({"bias"})


@pytest.mark.parametrize("name", ["Bad-Name", "1conv", "with space", ""])
def test_register_rejects_names_that_are_not_snake_case(name):
    with pytest.raises(ParamError, match="snake case"):
        register(Implementation(), op="conv2d", name=name)


def test_register_rejects_unknown_op():
    with pytest.raises(ParamError, match="op must be one of"):
        register(Implementation(), op="conv9d", name="x")


def test_duplicate_name_from_another_source_is_refused():
    register(Implementation(), op="conv2d", name="test_dup", spec="a", replace=True)
    with pytest.raises(ParamError, match="already registered"):
        register(Implementation(), op="conv2d", name="test_dup", spec="b")


def test_unavailable_reason_is_reported_not_raised():
    class Away(Implementation):
        def availability(self):
            return "needs a quantum computer"

    register(Away(), op="conv2d", name="test_away", replace=True)
    info = next(i for i in implementations("conv2d") if i.name == "test_away")
    assert not info.available and info.reason == "needs a quantum computer"
    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(convbench.UnsupportedError, match="quantum"):
        convbench.conv2d(x, w, impl="test_away")


def test_availability_check_that_raises_is_a_reason():
    class Boom(Implementation):
        def availability(self):
            raise RuntimeError("driver exploded")

    register(Boom(), op="conv2d", name="test_boom", replace=True)
    info = next(i for i in implementations("conv2d") if i.name == "test_boom")
    assert not info.available and "driver exploded" in info.reason


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ParamError, match="not a registered conv2d implementation; known: .*im2col"):
        load_impl("no_such_impl")


def test_load_function_from_file(tmp_path):
    f = tmp_path / "my_conv.py"
    f.write_text(textwrap.dedent("""
        import numpy as np
        import convbench
        def conv(x, w, b=None, stride=1, padding=0):
            return convbench.conv2d(x, w, b, stride=stride, padding=padding)
    """))
    impl = load_impl(f"{f}:conv")
    assert impl.info.name == "my_conv_conv" and impl.info.isolate
    assert impl.info.directions == frozenset({"forward"})
    assert "dilation" not in impl.info.features and "stride" in impl.info.features
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(convbench.conv2d(x, w, stride=2, padding=1, impl=f"{f}:conv"),
                                  convbench.conv2d(x, w, stride=2, padding=1))


def test_load_from_file_registered_with_decorator(tmp_path):
    f = tmp_path / "my_impls.py"
    f.write_text(textwrap.dedent("""
        import convbench
        from convbench.registry import Implementation, register
        @register(op="conv2d", name="test_file_impl")
        class Mine(Implementation):
            def forward(self, p, x, w, b):
                return convbench.conv2d(x, w, b)
    """))
    impl = load_impl(f"{f}:Mine")
    assert impl.info.name == "test_file_impl" and impl.info.isolate and impl.info.spec.endswith("my_impls.py:Mine")


def test_load_from_module_spec():
    cls = type(get_impl("im2col"))
    impl = load_impl(f"{cls.__module__}:{cls.__name__}")
    assert impl is get_impl("im2col")


@pytest.mark.parametrize("spec,fragment", [
    ("missing_file.py:conv", "no file"),
    ("nosuchpkg.mod:conv", "no module"),
    ("convbench.cases:not_there", "has no 'not_there'"),
    ("some_file.py", "names a file but no object"),
])
def test_bad_specs_are_named(spec, fragment):
    with pytest.raises(ParamError, match=fragment):
        load_impl(spec)


def test_object_that_cannot_be_adapted_is_a_type_error():
    with pytest.raises(ParamError, match="cannot adapt"):
        load_impl("convbench.cases:Case")


def test_broken_family_module_does_not_hide_the_others(tmp_path):
    """A module of impls/ that fails to import is listed as unavailable with the error."""
    code = textwrap.dedent(f"""
        import sys, types
        sys.path.insert(0, {str(tmp_path)!r})
        import impls, pathlib
        pathlib.Path({str(tmp_path)!r}, "zz_broken.py").write_text("raise ImportError('missing dependency foo')")
        impls.__path__.append({str(tmp_path)!r})
        from convbench.registry import implementations
        infos = {{i.name: i for i in implementations("conv2d")}}
        assert "im2col" in infos and infos["im2col"].available
        assert not infos["zz_broken"].available and "missing dependency foo" in infos["zz_broken"].reason, infos["zz_broken"]
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_entry_point_group_is_loaded(tmp_path, monkeypatch):
    """A third-party package registering through `convbench.impls` shows up."""
    dist = tmp_path / "thirdparty-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[convbench.impls]\nthird_conv = thirdparty_conv:conv\n")
    (tmp_path / "thirdparty_conv.py").write_text(
        "import convbench\ndef conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):\n"
        "    return convbench.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)\n")
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        from convbench.registry import implementations
        infos = {{i.name: i for i in implementations("conv2d")}}
        i = infos["third_conv"]
        assert i.available and i.isolate and i.spec == "thirdparty_conv:conv", i
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
