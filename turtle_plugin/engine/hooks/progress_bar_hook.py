"""Progress bars for training epochs, validation and testing."""
import sys
from typing import Optional, TextIO

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from turtle_plugin.registry import HOOKS

__all__ = ['ProgressBarHook']


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """MMEngine's :class:`~mmengine.utils.ProgressBar` over every training epoch, validation
    and test run, on the main process (counts are that process's iterations).

    Log lines of ``LoggerHook`` still appear every ``interval`` iterations: the cursor goes
    back to the start of the bar's line after each redraw, so a log line (longer than the bar)
    overwrites it and the bar reappears below. With ``enable='auto'`` the bars are drawn only
    when ``file`` is a terminal, so log files and CI output stay free of carriage returns.

    Args:
        enable (bool | str): ``True``, ``False`` or ``'auto'`` (a terminal only).
        file (TextIO, optional): where to draw; ``sys.stdout`` when None.
        bar_width (int): width of the bar in characters.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 enable: object = 'auto',
                 file: Optional[TextIO] = None,
                 bar_width: int = 40) -> None:
        if enable not in (True, False, 'auto'):
            raise ValueError(f"ProgressBarHook: enable must be True, False or 'auto', got "
                             f'{enable!r}')
        self.enable = enable
        self.file = file
        self.bar_width = bar_width
        self._bar: Optional[ProgressBar] = None

    def _active(self) -> bool:
        if not is_main_process() or self.enable is False:
            return False
        if self.enable == 'auto':
            stream = self.file or sys.stdout
            return bool(getattr(stream, 'isatty', lambda: False)())
        return True

    def _start(self, dataloader) -> None:
        if self._active():
            self._bar = ProgressBar(len(dataloader), bar_width=self.bar_width,
                                    file=self.file or sys.stdout)

    def _update(self) -> None:
        if self._bar is not None:
            self._bar.update()
            self._bar.file.write('\r')
            self._bar.file.flush()

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar.file.flush()
            self._bar = None

    def before_train_epoch(self, runner) -> None:
        self._start(runner.train_dataloader)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._update()

    def after_train_epoch(self, runner) -> None:
        self._finish()

    def before_val_epoch(self, runner) -> None:
        self._start(runner.val_dataloader)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._update()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._finish()

    def before_test_epoch(self, runner) -> None:
        self._start(runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._update()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._finish()
