"""Arrow columns built from buffers equal pyarrow's own conversion; a one-file command never imports pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from audit.store.columns import column, numbers

CASES = [
    (["a", None, "çé\n"], pa.string()),
    ([b"\xff\xd8", None, b""], pa.binary()),
    ([1.5, None, 2.0], pa.float64()),
    ([0.5, 0.25], pa.float32()),
    ([3, None, -1], pa.int32()),
    ([True, False, None], pa.bool_()),
    ([[1, 2], None, []], pa.list_(pa.int32())),
    ([["p1"], [], ["a", "b"], None], pa.list_(pa.string())),
    ([], pa.string()),
    ([None, None], pa.list_(pa.string())),
    ([None, None], pa.binary(3)),
    ([b"abc", None, b"xyz"], pa.binary(3)),
]


@pytest.mark.parametrize(("values", "type"), CASES)
def test_a_column_equals_pyarrows_conversion(values, type):
    built = column(values, type)
    built.validate(full=True)
    assert built.equals(pa.array(values, type)) and built.to_pylist() == values


def test_numbers_and_masks():
    assert numbers(np.array([3, 1], np.int32)).to_pylist() == [3, 1]
    assert numbers(np.array([True, False, True] * 5)).to_pylist() == [True, False, True] * 5


# Importing pandas costs ~0.2 s of a one-file command (docs/performance.md): scanning one photo (which archives its
# face) and enrolling someone (which searches that archive) must not import it.
ONE_FILE = """
import sys
from audit.cli import cli
for args in (["scan", sys.argv[1]], ["enroll", "face", "yao", sys.argv[1]]):
    try:
        cli.main(args, standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code
print("pandas imported:", "pandas" in sys.modules)
"""


def test_one_file_commands_do_not_import_pandas(photos, audit_home):
    from tests.helpers.cli import run

    run("enroll", "face", "gdp", photos["gdp"], "--pick", "largest")
    out = subprocess.run([sys.executable, "-c", ONE_FILE, str(photos["yaoming"])], capture_output=True, text=True,
                         check=True).stdout
    assert "found before enrolment" in out and "pandas imported: False" in out
