"""Never returns (a while loop whose condition never changes)."""
import time


def conv2d(x, w, b=None, stride=1, padding=0):
    while True:  # BUG
        time.sleep(0.05)
