"""Training metrics a user can open: a CSV per stream and TensorBoard event files, both safe to resume.

On resume the CSV rows and TensorBoard events after the checkpoint's step are dropped, so a run that was
killed and continued shows one clean curve.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path


class MetricsLogger:
    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            for path in self.run_dir.glob("*.csv"):
                _truncate_csv(path, resume_step)
        else:
            for path in self.run_dir.glob("*.csv"):
                path.unlink()
        # Events at the checkpoint's own step were logged before it was saved: keep them, as the CSV does.
        purge = None if resume_step is None else resume_step + 1
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def log(self, stream: str, step: int, values: dict[str, float | int | str | None]) -> None:
        """Append a row to <stream>.csv and scalars to TensorBoard under <stream>/."""
        path = self.run_dir / f"{stream}.csv"
        row = {"step": step, **{k: ("" if v is None else v) for k, v in values.items()}}
        header = []
        if path.exists():
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
        if header and set(row) <= set(header):
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
        else:  # new columns (e.g. losses once updates start): rewrite the file with the wider header
            old = []
            if header:
                with open(path, newline="") as f:
                    old = list(csv.DictReader(f))
            header = header + [k for k in row if k not in header]
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=header, restval="")
                w.writeheader()
                w.writerows(old + [row])
            os.replace(tmp, path)
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.tb.add_scalar(f"{stream}/{k}", v, step)

    def close(self) -> None:
        self.tb.close()


def _truncate_csv(path: Path, last_step: int) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    os.replace(tmp, path)
