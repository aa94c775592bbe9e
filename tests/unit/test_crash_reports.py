"""The report of a crashed test process puts the crashing thread first (tests/crash_reports.py)."""

from crash_reports import crash_report

DUMP = """Fatal Python error: Segmentation fault

Thread 0x00007f34e0ff96c0 (most recent call first):
  File "threading.py", line 331 in wait

Current thread 0x00007f27253eeb80 (most recent call first):
  File "zarr/core/sync.py", line 152 in sync

Extension modules: numpy._core._multiarray_umath, zarr (total: 2)
"""


def test_the_crashing_thread_comes_first_after_the_error_and_the_module_list_is_left_out() -> None:
    report = crash_report(DUMP)
    assert report.index("Segmentation fault") < report.index("Current thread") < report.index("threading.py")
    assert "Extension modules" not in report
