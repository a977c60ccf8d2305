"""A training run and its directory: the one object that writes the run, and reads it back.

A :class:`Run` owns the resolved config, the run directory and the run's id, the metrics
history, and every write (:mod:`lenet.storage.rundir` names the files): ``config.json``,
``metrics.csv``, the weights at the start and the end (with the preprocessing and the final
test accuracy in their metadata), ``model_best.safetensors``, the last two checkpoints and the
TensorBoard event files (``tensorboard --logdir runs``). Trouble with the file system while
writing is one :class:`~lenet.storage.rundir.RunDirError` line (:meth:`Run.writing`).

A new run starts from a fresh initialization, or from ``init_weights`` (fine-tuning:
:meth:`Run.start`, never again on resume, whose checkpoint holds the weights).

Model selection is honest: the test set is evaluated every epoch (a curve in metrics.csv) but
never chooses anything. With a validation split ``model_best.safetensors`` holds the epoch that
:func:`lenet.storage.history.select` picks, recomputed from the history, so a resumed run
chooses exactly as an uninterrupted one.

One process owns a run directory while it trains (:func:`lenet.storage.rundir.claim`): a new or
empty folder, or with ``--resume`` its own run, whose id (``run_id`` in config.json) every
checkpoint carries. :meth:`Run.resume` continues bit-identically on CPU from the newest intact
checkpoint of this run; it skips one of another run, or one that does not fit the model and
optimizer being trained, as it skips a damaged one. Under torchrun only rank 0 writes; every
rank keeps the same counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lenet.config import TrainConfig
from lenet.console import Log
from lenet.data import DATASETS
from lenet.data.transforms import Preprocessing
from lenet.errors import ConfigError, WeightsError
from lenet.models import load_fitting, weights
from lenet.storage import checkpoint, rundir
from lenet.storage.history import METRICS_COLUMNS, EpochMetrics, from_record, select
from lenet.training.distributed import Distributed
from lenet.training.optim import state_keys

if TYPE_CHECKING:
    from lenet.training.tensorboard import TensorBoardLogger


@dataclass
class MidEpoch:
    """Where an interrupted epoch stopped; the first epoch of the resumed run starts there."""

    step: int  # steps of the epoch already done
    order_state: list[int]  # the epoch-order generator's state when the epoch began
    loss_sum: float
    correct: int


def run_dir_for(cfg: TrainConfig, dist: Distributed) -> tuple[Path, bool]:
    """The run directory, and whether it was just created (a new default one)."""
    if cfg.run_dir:
        return Path(cfg.run_dir), False
    # Rank 0 alone creates the default folder (ranks may disagree on the clock).
    made = str(rundir.default(cfg.model)) if dist.is_main else ""
    return Path(dist.broadcast(made)), True


@contextmanager
def claimed(cfg: TrainConfig, dist: Distributed, resume: bool, overwrite: bool
            ) -> Iterator[tuple[Path, str]]:
    """The run directory, owned by this process while the block runs
    (:func:`lenet.storage.rundir.claim`, rank 0 only), and the run's id."""
    if cfg.init_weights is not None and not resume:
        read_init_weights(cfg)  # a wrong name or file is refused before any folder is made
    path, created = run_dir_for(cfg, dist)
    owned = (rundir.claim(path, resume=resume, overwrite=overwrite, created=created)
             if dist.is_main else nullcontext(path))
    with owned:
        # A resumed run keeps its id; a run dir from an older lenet has none, and gets one (its
        # checkpoints, which carry none, are then skipped).
        saved = rundir.read_config(path).get(rundir.RUN_ID) if resume else None
        yield path, dist.broadcast(saved if isinstance(saved, str) else rundir.new_run_id())


@dataclass
class Run:
    """A run: where it is written, what it has done so far, and what its checkpoints hold."""

    cfg: TrainConfig
    run_dir: Path
    run_id: str  # stamped into every checkpoint; --resume takes only this run's
    main: bool  # rank 0, which writes; the other ranks keep the same counts
    log: Log
    model: nn.Module
    optimizer: torch.optim.Optimizer
    # The epoch order comes from its own CPU generator so that the same seed gives the same
    # batches on every device; distortions draw from a device generator of their own.
    gens: dict[str, torch.Generator]
    prep: Preprocessing  # saved with the weights, so that inference preprocesses alike
    loss_name: str
    history: list[EpochMetrics] = field(default_factory=list)
    last_checkpoint: Path | None = None  # the newest good one on disk (kept by the next save)
    epoch: int = 0  # completed epochs
    step: int = 0  # global step
    train_seconds: float = 0.0
    resume_at: MidEpoch | None = None  # consumed by the first epoch
    tb: TensorBoardLogger | None = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Trouble with the file system while writing the run (a full disk, a read-only place)
        is one RunDirError line, which says how to resume when a checkpoint is kept."""
        rundir.check_lock(self.run_dir)  # a lock removed or replaced: another run may be here
        try:
            yield
        except OSError as e:
            resume = self.run_dir if self.last_checkpoint is not None else None
            raise rundir.write_error(self.run_dir, e, resume=resume) from None

    def weights_meta(self, accuracy: float | None, epoch: int,
                     chosen: Mapping[str, object] | None = None) -> weights.WeightsMeta:
        """`chosen`: for model_best, how validation chose it."""
        cfg = self.cfg
        return weights.WeightsMeta(
            cfg.model, self.prep, cfg.dataset, list(DATASETS[cfg.dataset].classes),
            accuracy, {"loss": self.loss_name, "rbf_j": cfg.rbf_j,
                       "eval_batch_size": cfg.eval_batch_size, "config": cfg.to_dict(),
                       "epoch": epoch, **(chosen or {})})

    # ----------------------------------------------------------------------- the phases
    def start(self, resumed: bool) -> None:
        """Write the config (with the run's id) and, for a new run, the initial weights; open
        the TensorBoard event file. A new run (not a resumed one) starts from `init_weights`
        when the config names them, on every rank."""
        if not resumed and self.cfg.init_weights is not None:
            self._load_init_weights()
        if not self.main:
            return
        with self.writing():
            self.tb = _tensorboard(self.run_dir) if self.cfg.tensorboard else None
            if self.tb is None and self.cfg.tensorboard:  # config.json says what happened
                self.cfg = replace(self.cfg, tensorboard=False)
            rundir.write_config(self.run_dir, {**self.cfg.to_dict(), rundir.RUN_ID: self.run_id})
            if not resumed:
                weights.save(self.run_dir / rundir.INITIAL, self.model, self.weights_meta(None, 0))

    def end_epoch(self, m: EpochMetrics) -> None:
        """Record finished epoch `m`: metrics.csv, TensorBoard, model_best, a checkpoint."""
        self.history.append(m)
        if self.main:
            with self.writing():
                rundir.write_metrics(self.run_dir, METRICS_COLUMNS,
                                     [asdict(h) for h in self.history])
                if self.tb is not None:
                    self.tb.log_epoch(self.model, m)
                # Before the checkpoint: a checkpoint of epoch k implies model_best is of an
                # epoch <= k.
                self._save_best(m)
            self.save(m.epoch, 0, {})
        self.epoch = m.epoch

    def save(self, epoch_done: int, step_in_epoch: int, progress: Mapping[str, object]
             ) -> Path | None:
        """Write a checkpoint (rank 0; None elsewhere); the one before it is the only other
        kept (deleted by the next)."""
        if not self.main:
            return None
        ckpt = checkpoint.Checkpoint(
            epoch=epoch_done, step_in_epoch=step_in_epoch, global_step=self.step,
            model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            rng=_rng_states(self.gens),
            state={"history": [asdict(m) for m in self.history],
                   "train_seconds": self.train_seconds, "epoch_progress": dict(progress)},
            run_id=self.run_id)
        with self.writing():
            path = checkpoint.save(self.run_dir, ckpt, keep=self.last_checkpoint)
        self.last_checkpoint = path
        return path

    def finish(self, test_accuracy: float, final_metrics: Mapping[str, float | None]) -> None:
        """Save the final weights, and close TensorBoard with the run's final figures."""
        if not self.main:
            return
        with self.writing():
            # The epochs trained, which a resume never lets differ from cfg.epochs.
            weights.save(self.run_dir / rundir.WEIGHTS, self.model,
                         self.weights_meta(test_accuracy, self.epoch))
        if self.tb is not None:
            self.tb.close(self.cfg.to_dict(), dict(final_metrics))

    def _save_best(self, m: EpochMetrics) -> None:
        """Write model_best.safetensors (atomically) when epoch `m` is the best on validation."""
        if select(self.history).best_epoch != m.epoch:
            return
        weights.save(self.run_dir / rundir.BEST, self.model, self.weights_meta(
            m.test_accuracy, m.epoch, {"selected_on": "validation",
                                       "val_accuracy": m.val_accuracy, "val_loss": m.val_loss}))

    def _load_init_weights(self) -> None:
        """Fine-tuning: the weights `cfg.init_weights` names, loaded where they fit (timm's
        rule: a layer whose shape differs keeps its fresh initialization, named here)."""
        tensors = read_init_weights(self.cfg)
        reset = load_fitting(self.model, tensors)
        self.log(f"starting from the weights {self.cfg.init_weights}"
                 + (f", except {', '.join(reset)}, whose shapes differ (initialized afresh)"
                    if reset else ""))

    # ----------------------------------------------------------------------- resuming
    def resume(self, steps: int) -> bool:
        """Continue from the newest intact checkpoint of this run (`steps` per epoch); whether
        there was one."""
        ckpt = checkpoint.latest(self.run_dir, warn=self.log,
                                 check=lambda c, path: self._check_checkpoint(c, path, steps))
        if ckpt is None:
            self.log(f"no intact checkpoint in {self.run_dir}; starting it from the beginning")
            return False
        if (ckpt.epoch, ckpt.step_in_epoch) > (self.cfg.epochs, 0):
            raise ConfigError(f"{self.run_dir} has trained {ckpt.epoch} epochs already "
                              f"({ckpt.path}); --epochs {self.cfg.epochs} is fewer: resume with "
                              f"--epochs {ckpt.epoch} or more")
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        _match_state_layout(self.optimizer)
        _restore_rng(self.gens, ckpt.rng)
        self.history = [from_record(m) for m in ckpt.state["history"]]
        self.epoch, self.step = ckpt.epoch, ckpt.global_step
        self.train_seconds = float(ckpt.state.get("train_seconds", 0.0))
        self.last_checkpoint = ckpt.path
        self._check_best()
        if ckpt.step_in_epoch:
            carried = ckpt.state.get("epoch_progress", {})
            self.resume_at = MidEpoch(ckpt.step_in_epoch, carried["order_state"],
                                      carried.get("loss_sum", 0.0), carried.get("correct", 0))
        self.log(f"resuming {self.run_dir} from epoch {ckpt.epoch}"
                 + (f", step {ckpt.step_in_epoch}" if ckpt.step_in_epoch else ""))
        return True

    def _check_checkpoint(self, ckpt: checkpoint.Checkpoint, path: Path, steps: int) -> None:
        """Refuse (WeightsError) a verified checkpoint of another run, or one that does not fit
        this run: counts that contradict each other, tensors of another model or optimizer."""
        if ckpt.run_id != self.run_id:
            whose = f"run id {ckpt.run_id}" if ckpt.run_id else "no run id (an older lenet's?)"
            raise WeightsError(f"{path}: written by another run ({whose}; this run is "
                               f"{self.run_id})")
        history = ckpt.state["history"]
        try:
            metrics = [from_record(m) for m in history]
            ok = all(m.epoch == i + 1 and all(isinstance(v, (int, float)) or v is None
                                              for v in asdict(m).values())
                     for i, m in enumerate(metrics))
        except TypeError:
            ok = False
        if not ok or len(history) != ckpt.epoch:
            raise WeightsError(f"{path}: claims {ckpt.epoch} completed epochs, but its history "
                               f"records {len(history)} (or is malformed)")
        if ckpt.step_in_epoch >= steps:
            raise WeightsError(f"{path}: stopped at step {ckpt.step_in_epoch} of an epoch that "
                               f"has {steps}")
        order = self.gens["order"].get_state()
        if "order" not in ckpt.rng or ckpt.rng["order"].numel() != order.numel():
            raise WeightsError(f"{path}: no epoch-order RNG state of {order.numel()} bytes")
        checkpoint.check_fits(ckpt, str(path), self.model, self.optimizer, state_keys(self.cfg))

    def _check_best(self) -> None:
        """On resume: drop a model_best.safetensors that is not of the best epoch the history
        records (written for an epoch the resumed run trains again, or damaged); validation
        picks again from here."""
        path = self.run_dir / rundir.BEST
        if not self.main or not path.exists():
            return
        try:
            epoch = weights.read(path)[1].extra.get("epoch")
        except (WeightsError, OSError):
            epoch = None
        best = select(self.history).best_epoch
        if epoch != best:
            self.log(f"{path} is not of epoch {best}, the best on validation so far; deleting it")
            with self.writing():
                path.unlink()


def read_init_weights(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The tensors of ``cfg.init_weights`` (bundled by name or ``arch.tag``, a run directory or
    a ``.safetensors`` file), read and checked; they must be of the model the run trains."""
    assert cfg.init_weights is not None
    tensors, meta = weights.read(cfg.init_weights)
    if meta.model != cfg.model:
        raise ConfigError(f"init_weights {cfg.init_weights}: these are weights of {meta.model}, "
                          f"and this run trains {cfg.model}; pass --model {meta.model}, or "
                          f"weights of {cfg.model}")
    return tensors


def _tensorboard(run_dir: Path) -> TensorBoardLogger | None:
    """None where tensorboard, an extra, is not installed: the run trains without it."""
    from lenet.training.tensorboard import open_logger  # noqa: PLC0415  (imports torch's)

    return open_logger(run_dir)


def _rng_states(gens: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    states = {name: g.get_state() for name, g in gens.items()}
    states["torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def _restore_rng(gens: dict[str, torch.Generator], states: dict[str, torch.Tensor]) -> None:
    # A state of another size comes from another device type (a run resumed on the CPU that
    # began on a GPU): that generator starts afresh rather than fail.
    for name, g in gens.items():
        if name in states and states[name].numel() == g.get_state().numel():
            g.set_state(states[name])
    torch.set_rng_state(states["torch"])
    if ("cuda" in states and torch.cuda.is_available()
            and states["cuda"].numel() == torch.cuda.get_rng_state().numel()):
        torch.cuda.set_rng_state(states["cuda"])


def _match_state_layout(opt: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (momentum, Adam's moments) its parameter's memory
    layout. A checkpoint stores them contiguous; with channels-last weights the fused optimizer
    kernels walk parameter and state in memory order, so a layout mismatch would pair the wrong
    elements and a resumed run would silently diverge from the uninterrupted one."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if (isinstance(value, torch.Tensor) and value.shape == p.shape
                        and value.stride() != p.stride()):
                    opt.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
