"""Where and how lenet runs: the device and precision (:mod:`~lenet.runtime.device`), the CPU
(:mod:`~lenet.runtime.cpu`), thread counts (:mod:`~lenet.runtime.threads`) and child processes
(:mod:`~lenet.runtime.jobs`)."""
