"""Cold start of the product's guard Lambda measured as the Custodian anchor measures it.

Fresh process: (timed) import the handler and boto3; (untimed) moto in-process, provision the
security account's resources, register a CN member account, launch one p5 instance there;
(timed) the first deny event through guard.handler, which builds the runtime from the environment
(config, policy engine, clients) and decides, logs and remediates. Prints one JSON line.
Copied from the team's anchors (issue 16); benchmarks/cold_start.py runs it. Standalone, with the project's
.venv: .venv/bin/python benchmarks/anchors/guard_cold_first_event.py
"""
import time

T0 = time.perf_counter()
C0 = time.process_time()
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ[k] = "bench"
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")
os.environ.setdefault("ENFORCER_POLICY", os.path.join(ROOT, "policies"))
os.environ.setdefault("_HANDLER", "lambdas.guard.handler")  # as the Lambda runtime sets it
from lambdas import guard  # noqa: E402

T1 = time.perf_counter()
import boto3  # noqa: E402,F401
import threading  # noqa: E402

# Work the import started in the background (the policy engine's build) would otherwise run free during
# the untimed setup; the timed import window ends only when it is done (in Lambda it could overlap the
# first event too, so this is the conservative reading).
BACKGROUND = [t for t in threading.enumerate() if t is not threading.main_thread()]
for _t in BACKGROUND:
    _t.join(timeout=60)
T2 = time.perf_counter()
C2 = time.process_time()
TIMED_MODULES = frozenset(sys.modules)
# ---- untimed setup
from moto import mock_aws  # noqa: E402

m = mock_aws()
m.start()
from enforcer.accounts_aws import DynamoDBAccountDirectory  # noqa: E402
from enforcer.demo.provision import provision  # noqa: E402
from enforcer.wiring.aws import ClientFactory, set_runtime  # noqa: E402
from enforcer.demo.events import run_instances  # noqa: E402
from enforcer.demo.world import MOTO_AMI, LambdaContext  # noqa: E402
from enforcer.model import AccountOrigin  # noqa: E402

HOME, MEMBER = "123456789012", "111111111111"
setup = ClientFactory("us-east-1", home_account=HOME)
env = provision(setup)
os.environ.update(env)
d = DynamoDBAccountDirectory(setup.client("dynamodb"), env["ENFORCER_ACCOUNTS_TABLE"])
d.put(AccountOrigin(MEMBER, "CN", "CN", "CN", kyc="verified"))
ec2 = setup.client("ec2", MEMBER)
img = ec2.describe_images(ImageIds=[MOTO_AMI])["Images"][0]["ImageId"]
resp = ec2.run_instances(ImageId=img, InstanceType="p5.48xlarge", MinCount=1, MaxCount=1)
event = run_instances(resp, MEMBER, instanceType="p5.48xlarge")
set_runtime(None)
logging.getLogger("enforcer").setLevel(logging.ERROR)
# Fairness: the setup imported project modules (and click, rich, boto3.dynamodb ...) that the control's and
# Custodian's setups never load for them. Forget every pure-Python module of those packages that the setup
# added, so the guard's first event pays for each module it imports lazily (moto and what moto imports stay
# loaded, as in the other two harnesses; compiled extension modules cannot be imported twice and stay).
PURGE = ("enforcer", "lambdas", "click", "rich", "yaml", "joserfc", "boto3.dynamodb", "boto3.s3", "s3transfer")
for _name in sorted(set(sys.modules) - TIMED_MODULES):
    _file = str(getattr(sys.modules[_name], "__file__", "") or "")
    if _name.startswith(tuple(p + "." for p in PURGE) + PURGE) and _file.endswith(".py"):
        del sys.modules[_name]
# ---- timed first event
T3 = time.perf_counter()
C3 = time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    out = guard.handler(event, LambdaContext())
T4 = time.perf_counter()
C4 = time.process_time()
r = out["results"][0]
print(json.dumps({"import_handler_ms": round((T1 - T0) * 1e3, 1), "import_boto3_ms": round((T2 - T1) * 1e3, 1),
                  "first_event_ms": round((T4 - T3) * 1e3, 1),
                  "cold_total_ms": round((T2 - T0 + T4 - T3) * 1e3, 1),
                  "cold_cpu_ms": round((C2 - C0 + C4 - C3) * 1e3, 1),
                  "background_threads_joined": len(BACKGROUND),
                  "effect": r["effect"], "remediation": r["remediation"]["status"]}))
