"""Pollux/AdaptDL on a real testbed: AdaptDL training jobs, the monitor log, the Figure 6(a) trace,
the Kubernetes manifests (AdaptDLJob CRD, scheduler, RBAC) and the runner on testbed nodes.

AdaptDL comes from PyPI (adaptdl 0.2.11, the last release) and runs on the locked torch 2.13 and
numpy 2.4 with two version pins and one call of ours (see `compat`):
- `adaptdl.torch` imports `pkg_resources`, which setuptools removed in 82: setuptools==81.0.0.
- `adaptdl.torch.init_process_group` calls `semver.VersionInfo.isvalid`, gone in semver 3, when
  it discovers its peers through a supervisor: semver==2.13.0.
- its checkpoint loads the model state with `torch.load` and the default `weights_only=True` of
  torch >= 2.6, which refuses the numpy scalars AdaptDL stores beside the state dicts: the
  trainer allowlists exactly those numpy types (`compat.allow_checkpoint_globals`).
- `GoodputFunction.optimize` uses `np.int` (removed in numpy 1.24) only without gradient
  accumulation; every upstream job autoscales with `gradient_accumulation=True`, and so do ours.
"""
