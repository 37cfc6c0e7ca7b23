"""Aborts the process (what a segfaulting C extension looks like from outside)."""
import os


def conv2d(x, w, b=None, stride=1, padding=0):
    os.abort()  # BUG
