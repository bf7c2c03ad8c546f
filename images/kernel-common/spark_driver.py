"""The Spark driver's application: hands the driver pod over to the image's kernel bootstrap.

A Spark kernelspec's ``bin/run.sh`` submits this file
(``local:///opt/kernelgate/spark_driver.py``) in cluster mode.  Spark's entry
point runs it in the driver pod, whose env the pod template filled as for any
kernel pod, so ``/etc/bootstrap-kernel.sh`` picks the kernel for
``KERNEL_LANGUAGE`` and runs the launcher.  The kernel inherits the driver's
environment, including PySpark's gateway variables.
"""

import os
import sys

BOOTSTRAP = "/etc/bootstrap-kernel.sh"

if __name__ == "__main__":
    os.execv(BOOTSTRAP, [BOOTSTRAP, *sys.argv[1:]])
