"""What importing the package does to the process environment."""
import os
import subprocess
import sys


def test_package_import_shortens_openmp_spinning_unless_the_user_set_it():
    code = "import gsvnet_ros, os; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "10000"
    env["GOMP_SPINCOUNT"] = "5"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "5"
