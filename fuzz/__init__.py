"""Fuzz targets for the codec: the shared invariant (:mod:`fuzz.harness`), the atheris entry
point (``fuzz_codec.py``), the seed corpus generator and the bounded CI pass (``run_ci.py``)."""
