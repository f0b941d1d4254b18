"""Cold start of the plain boto3 control handler (custodian/control_handler.py), measured like
guard_cold_first_event.py: (timed) import boto3 and the handler; (untimed) moto in-process and one p5
instance; (timed) the first deny event (describe + stop). Prints one JSON line.
Copied from the team's anchors (issue 16). Run with any Python that has boto3 and moto:
python benchmarks/anchors/control_cold_first_event.py
"""
import time

T0 = time.perf_counter()
C0 = time.process_time()
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custodian")
sys.path.insert(0, HERE)
for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ[k] = "bench"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
import boto3  # noqa: E402
import control_handler  # noqa: E402

T1 = time.perf_counter()
C1 = time.process_time()
import fixtures as fx  # noqa: E402
from moto import mock_aws  # noqa: E402

m = mock_aws()
m.start()
ec2 = boto3.session.Session(region_name=fx.REGION).client("ec2")
deny_id = fx.launch_fixture_instances(ec2)[fx.DENY_TYPE]
event = fx.runinstances_event(deny_id, fx.DENY_TYPE)
T2 = time.perf_counter()
C2 = time.process_time()
out = control_handler.handler(event, None)
T3 = time.perf_counter()
C3 = time.process_time()
print(json.dumps({"import_ms": round((T1 - T0) * 1e3, 1), "first_event_ms": round((T3 - T2) * 1e3, 1),
                  "cold_total_ms": round((T1 - T0 + T3 - T2) * 1e3, 1),
                  "cold_cpu_ms": round((C1 - C0 + C3 - C2) * 1e3, 1), "stopped": out}))
