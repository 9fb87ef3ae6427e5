"""A sweep's progress bar that starts counting at the first finished variant (rate and ETA from there)."""

from __future__ import annotations

import sys
from typing import Any


class SweepProgress:
    """tqdm bar opened on the first update: start-up (imports, first compose) stays out of the rate."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc = total, desc
        self.bar: Any = None

    def update(self, n: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            # `initial` counts the first finished variants without counting their time in the rate.
            self.bar = tqdm(
                total=self.total,
                initial=n,
                desc=self.desc,
                unit="variant",
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                "[{elapsed}<{remaining}, {rate_fmt}]",
            )
            self.bar.refresh()
        else:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
