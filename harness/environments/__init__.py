"""Costly, cached run-time environments, built here from a Debian mirror and PyPI; nothing pulled.

One builder, two recipes:

* the pieces (:mod:`.build`: progress lines with timings, logged steps, the locked hash-keyed build
  of a directory with a temporary directory beside it renamed into place, scratch directories,
  mount-safe removal; :mod:`.mirror`: the Debian mirror apt uses here; :mod:`.debootstrap`: a root
  file system of any architecture; :mod:`.wheels`: offline wheels for a foreign platform with a
  manifest; :mod:`.engine`: the local Docker engine);
* the recipes: :mod:`.serving_image` (the serving images: base via ``docker import``, the
  compatible server via ``docker build --network none``) and :mod:`.arm64_rootfs` (the arm64
  root file system of the emulated LiteRT device).

:mod:`.reaper` removes what a run leaves behind when it is killed outright; :mod:`.ownership`
says who owns what (a random id per process, alive while its lock is held) and confines it.  Every cache entry lives
under :func:`harness.paths.environment_cache_root`.  Nothing here does work at import time, and
the docker SDK and filelock are imported inside functions.
"""
