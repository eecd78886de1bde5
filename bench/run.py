#!/usr/bin/env python3
"""deckhand's benchmarks, side by side with what users would pick instead.

Runs on the local bed (Docker engine, registry, moto, the aws CLI and ecs-deploy from the bed's
venv) and on `deckhand sandbox`, and prints Markdown tables: medians of BENCH_RUNS runs (default
5). Timing is measured here and reported, never asserted. Usage:

    bench/run.py [overhead late slow failure strategies codedeploy context cache rerun fleet
                  startup]...                                                 (default: all)

It brings up the local bed (scripts/bed up) unless one is running already (DECKHAND_BED_DIR
names another checkout's, as scripts/bed reads it), and builds the release binary if there is
none. BENCH_TOOLS (deckhand,ecs-deploy,aws) runs only those tools.

Everything talks to loopback only. Measurements of a child process (CPU time, peak RSS) come from
wait4(2) on that process.
"""

import http.client
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
ECS = "AmazonEC2ContainerServiceV20141113."


def bed_running():
    """True when every part of the bed (this checkout's, or DECKHAND_BED_DIR's) is running."""
    out = subprocess.run([os.path.join(ROOT, "scripts/bed"), "status"], capture_output=True,
                         text=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    return bool(lines) and all(": running" in line for line in lines)


def bed_env():
    """The environment `scripts/bed env` exports, on top of this process's."""
    out = subprocess.run([os.path.join(ROOT, "scripts/bed"), "env"], capture_output=True,
                         text=True, check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    for key in [k for k in env if k.startswith("DECKHAND_")
                and not k.startswith(("DECKHAND_TEST", "DECKHAND_BED"))]:
        del env[key]
    # boto3 (ecs-deploy) reads the region from AWS_DEFAULT_REGION.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    return env


def measure(argv, env, cwd=None, marker=None):
    """Runs argv; returns wall seconds, CPU seconds, peak RSS (MiB), exit code, output, and the
    seconds until a line containing `marker` appeared (on either stream)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    seen = {"at": None}
    chunks = {"out": [], "err": []}

    def pump(stream, name):
        for line in stream:
            chunks[name].append(line)
            if marker and seen["at"] is None and marker in line:
                seen["at"] = time.monotonic() - start
    threads = [threading.Thread(target=pump, args=(proc.stdout, "out")),
               threading.Thread(target=pump, args=(proc.stderr, "err"))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024.0,
        "code": proc.returncode,
        "out": "".join(chunks["out"]),
        "err": "".join(chunks["err"]),
        "marker": seen["at"],
        "ended": time.time(),
    }


def combine(runs):
    """Several processes run one after the other, as one measurement."""
    return {
        "wall": sum(r["wall"] for r in runs),
        "cpu": sum(r["cpu"] for r in runs),
        "rss": max(r["rss"] for r in runs),
        "code": next((r["code"] for r in runs if r["code"] != 0), 0),
        "out": "".join(r["out"] for r in runs),
        "err": "".join(r["err"] for r in runs),
        "marker": None,
        "ended": runs[-1]["ended"],
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, unit="", digits=2):
    if value is None:
        return "–"
    return f"{value:.{digits}f}{unit}"


class Recorder:
    """A loopback HTTP proxy in front of the sandbox that notes each API call as it arrives
    (epoch seconds, operation): when a tool calls what, with no help from the tool or the
    sandbox. Every tool goes through it alike."""

    def __init__(self, upstream):
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.log = []
        self.lock = threading.Lock()
        recorder = self
        local = threading.local()

        class Forward(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                target = self.headers.get("X-Amz-Target", "")
                with recorder.lock:
                    recorder.log.append((time.time(), target.rpartition(".")[2] or "?"))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not hasattr(local, "conn"):
                    local.conn = http.client.HTTPConnection(host, int(port), timeout=120)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                try:
                    local.conn.request(self.command, self.path, body=body, headers=headers)
                    answer = local.conn.getresponse()
                    data = answer.read()
                except (http.client.HTTPException, OSError):
                    # A dropped answer (the sandbox's fault injection) is dropped here too.
                    local.conn.close()
                    del local.conn
                    self.close_connection = True
                    return
                self.send_response_only(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                         "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def clear(self):
        with self.lock:
            self.log = []

    def calls(self):
        with self.lock:
            return list(self.log)

    def stop(self):
        self.server.shutdown()


def watch_rate(calls, ended):
    """Read calls (Describe*, List*) a minute from the tool's UpdateService to its exit: what it
    costs while it watches."""
    updates = [t for t, op in calls if op == "UpdateService"]
    if not updates or ended <= updates[0]:
        return None
    reads = [t for t, op in calls if t > updates[0] and op.startswith(("Describe", "List"))]
    return len(reads) / (ended - updates[0]) * 60


class Sandbox:
    """`deckhand sandbox` on a free loopback port, a tiny unsigned client for its API, and the
    recording proxy the tools talk to (`api`)."""

    def __init__(self, deckhand, env, time_scale=None):
        # DECKHAND_SANDBOX_BIN: the sandbox from another build (to measure an older deckhand on
        # the same sandbox). `time_scale`: the sandbox's, instead of its default.
        deckhand = os.environ.get("DECKHAND_SANDBOX_BIN", deckhand)
        scale = ["--time-scale", str(time_scale)] if time_scale else []
        self.proc = subprocess.Popen([deckhand, "sandbox", "--listen", "127.0.0.1:0",
                                      "--tick", "100ms"] + scale, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint.startswith("http"):
            raise SystemExit("bench: the sandbox did not start")
        self.recorder = Recorder(self.endpoint)
        self.api = self.recorder.endpoint

    def stop(self):
        self.recorder.stop()
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def mode(self, **mode):
        """Sets the sandbox's mode (`/_sandbox/mode`): {} is ECS's plain behaviour."""
        req = urllib.request.Request(self.endpoint + "/_sandbox/mode",
                                     data=json.dumps(mode).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def call(self, op, body):
        """ECS's `op`, or another service's given with its target prefix
        (`CodeDeploy_20141006.GetDeployment`)."""
        target = op if "." in op else ECS + op
        req = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), headers={
            "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"bench: {op} was refused: {e.read().decode(errors='replace')}")

    def calls(self, reset=False):
        req = urllib.request.Request(self.endpoint + "/_sandbox/calls",
                                     method="DELETE" if reset else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def service(self, cluster, name):
        return self.call("DescribeServices", {"cluster": cluster, "services": [name]})["services"][0]

    def register(self, family, image, container=None):
        td = {"family": family, "containerDefinitions": [app_container(image, container)]}
        return self.call("RegisterTaskDefinition", td)["taskDefinition"]["taskDefinitionArn"]

    def create_service(self, cluster, name, td, breaker):
        self.call("CreateCluster", {"clusterName": cluster})
        self.call("CreateService", {
            "cluster": cluster, "serviceName": name, "taskDefinition": td, "desiredCount": 1,
            "deploymentConfiguration": {
                "maximumPercent": 200, "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker}}})

    def wait_stable(self, cluster, names, limit=300):
        deadline = time.monotonic() + limit
        pending = list(names)
        while pending:
            for batch in [pending[i:i + 10] for i in range(0, len(pending), 10)]:
                out = self.call("DescribeServices", {"cluster": cluster, "services": batch})
                for s in out["services"]:
                    d = s["deployments"]
                    if len(d) == 1 and d[0].get("rolloutState") == "COMPLETED" and \
                            s["runningCount"] == s["desiredCount"]:
                        pending.remove(s["serviceName"])
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {pending} did not settle")
            time.sleep(0.2)

    def scale_to_zero(self, cluster, name, limit=120):
        self.call("UpdateService", {"cluster": cluster, "service": name, "desiredCount": 0})
        deadline = time.monotonic() + limit
        while True:
            s = self.service(cluster, name)
            if s["runningCount"] == 0 and s["pendingCount"] == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {name} did not stop")
            time.sleep(0.2)

    def event_time(self, cluster, name, text):
        """When the newest event containing `text` was recorded (epoch seconds)."""
        for e in self.service(cluster, name)["events"]:
            if text in e["message"]:
                return e["createdAt"]
        return None

    def ecs_calls(self):
        return sum(v for k, v in self.calls().items()
                   if k.startswith("ECS.") and k.count(".") == 1)


def app_container(image, container=None):
    """The benchmark's container `app` running `image`: by default `sleep 600`, counted healthy
    once up --stable-after; `container` overrides members (a command, a health check)."""
    c = {"name": "app", "image": image, "essential": True, "memory": 32,
         "command": ["sleep", "600"]}
    c.update(container or {})
    return c


# A container that turns healthy only after 25 s (the sandbox scales health-check timings by
# 0.1: checks every 0.5 s, failures not counted for the first 30 s): a slow rollout.
SLOW = {"command": ["sh", "-c", "sleep 25; touch /tmp/ready; exec sleep 600"],
        "healthCheck": {"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 5,
                        "timeout": 2, "retries": 3, "startPeriod": 300}}


def tag_image(env, source, tag):
    subprocess.run(["docker", "tag", source, tag], env=env, check=True)


def broken_image(env):
    """A local image whose tasks cannot start their command (no shell, no sleep)."""
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY x /x\n")
    with open(os.path.join(d, "x"), "w") as f:
        f.write("x")
    subprocess.run(["docker", "build", "-q", "-t", "deckhand-bench/broken:1", d], env=env,
                   check=True, capture_output=True)
    shutil.rmtree(d)
    return "deckhand-bench/broken:1"


def deploy_tools(deckhand, env, bed):
    """How each tool deploys `image` to service `name` in cluster `bench`: (label, runner)."""
    aws = [bed["DECKHAND_TEST_AWS_CLI"], "--region", "us-east-1", "--output", "json"]

    def with_deckhand(sb, name, image, container):
        return measure([deckhand, "deploy", "--cluster", "bench", "--service", name,
                        "--container", "app", "--image", image, "--timeout", "5m"], env)

    def with_ecs_deploy(sb, name, image, container):
        return measure([bed["DECKHAND_TEST_ECS_DEPLOY"], "deploy", "bench", name, "--image",
                        "app", image, "--timeout", "300", "--rollback"], env)

    def with_aws_cli(sb, name, image, container):
        td = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"family": name, "containerDefinitions": [app_container(image, container)]},
                  td)
        td.close()
        runs = [measure(aws + ["ecs", "register-task-definition", "--cli-input-json",
                               f"file://{td.name}"], env),
                measure(aws + ["ecs", "update-service", "--cluster", "bench", "--service", name,
                               "--task-definition", name], env),
                measure(aws + ["ecs", "wait", "services-stable", "--cluster", "bench",
                               "--services", name], env)]
        os.unlink(td.name)
        return combine(runs)

    return only_wanted([("deckhand", with_deckhand), ("ecs-deploy", with_ecs_deploy),
                        ("aws CLI: register + update + wait", with_aws_cli)])


def only_wanted(tools):
    """BENCH_TOOLS: only these (deckhand, ecs-deploy, aws), e.g. to measure a change of
    deckhand's beside figures of the others taken before."""
    wanted = os.environ.get("BENCH_TOOLS")
    if wanted:
        names = {w.strip() for w in wanted.split(",")}
        tools = [t for t in tools if t[0].split()[0].rstrip(":") in names]
    return tools


def success_rows(sb, deckhand, env, bed, prefix, container=None, runs=RUNS):
    """Each tool deploys a good image to its own fresh service, `runs` times: a table's rows."""
    print("| tool | wall | verdict latency | CPU | peak RSS | ECS API calls "
          "| calls a minute watching | exit |")
    print("|---|---|---|---|---|---|---|---|")
    for label, run in deploy_tools(deckhand, env, bed):
        names = [f"{prefix}-{label.split()[0].replace(':', '')}-{i}" for i in range(runs)]
        # Services start together: a slow container's first rollout is paid once per tool.
        for name in names:
            sb.create_service("bench", name, sb.register(name, bed["DECKHAND_TEST_BASE_IMAGE"],
                                                         container), breaker=True)
        sb.wait_stable("bench", names)
        rows = []
        for name in names:
            image = f"deckhand-bench/app:{name}"
            tag_image(env, bed["DECKHAND_TEST_BASE_IMAGE"], image)
            sb.calls(reset=True)
            sb.recorder.clear()
            r = run(sb, name, image, container)
            r["calls"] = sb.ecs_calls()
            r["rate"] = watch_rate(sb.recorder.calls(), r["ended"])
            decided = sb.event_time("bench", name, "deployment completed")
            r["latency"] = r["ended"] - decided if decided else None
            rows.append(r)
            if container:
                # Health checks keep running: the service goes, so they load nothing after it.
                sb.scale_to_zero("bench", name)
        print(f"| {label} | {fmt(median(r['wall'] for r in rows), ' s')} "
              f"| {fmt(median(r['latency'] for r in rows), ' s')} "
              f"| {fmt(median(r['cpu'] for r in rows), ' s')} "
              f"| {fmt(median(r['rss'] for r in rows), ' MiB', 1)} "
              f"| {fmt(median(r['calls'] for r in rows), '', 0)} "
              f"| {fmt(median(r['rate'] for r in rows), '', 0)} "
              f"| {sorted(set(r['code'] for r in rows))} |")


def scenario_overhead(sb, deckhand, env, bed):
    print("\n## Deploy with a given image (success)\n")
    success_rows(sb, deckhand, env, bed, "ok")


def scenario_late(sb, deckhand, env, bed):
    print("\n## Deploy with a given image, ECS reporting the new tasks running only once the "
          "deployment completes (`--late-running-count`)\n")
    sb.mode(late_running_count=True)
    try:
        success_rows(sb, deckhand, env, bed, "late")
    finally:
        sb.mode()


def scenario_slow(sb, deckhand, env, bed):
    runs = min(RUNS, 3)
    print(f"\n## A slow rollout: new tasks healthy after 25 s ({runs} runs each)\n")
    success_rows(sb, deckhand, env, bed, "slow", container=SLOW, runs=runs)


def scenario_failure(sb, deckhand, env, bed):
    print("\n## A crash-looping revision (ECS circuit breaker on, as most teams set it)\n")
    print("| tool | exit (what it said) | verdict latency | first task stop → rollback starts "
          "| wall | ECS API calls | calls a minute watching |")
    print("|---|---|---|---|---|---|---|")
    broken = broken_image(env)
    notes = []
    for label, run in deploy_tools(deckhand, env, bed):
        rows = []
        for i in range(RUNS):
            name = f"bad-{label.split()[0].replace(':', '')}-{i}"
            first = sb.register(name, bed["DECKHAND_TEST_BASE_IMAGE"])
            sb.create_service("bench", name, first, breaker=True)
            sb.wait_stable("bench", [name])
            image = f"deckhand-bench/broken:{name}"
            tag_image(env, broken, image)
            sb.calls(reset=True)
            sb.recorder.clear()
            r = run(sb, name, image, None)
            r["calls"] = sb.ecs_calls()
            r["rate"] = watch_rate(sb.recorder.calls(), r["ended"])
            r["reaction"] = rollback_reaction(sb, name)
            # The newest completion is the rollback's: the service is back and stable.
            back = sb.event_time("bench", name, "deployment completed")
            r["latency"] = r["ended"] - back if back else None
            rows.append(r)
        notes.append(f"- {label}, last line: `{last_line(rows[0])}`")
        codes = sorted(set(r["code"] for r in rows))
        print(f"| {label} | {', '.join(SAID.get(c, str(c)) for c in codes)} "
              f"| {fmt(median(r['latency'] for r in rows), ' s')} "
              f"| {fmt(median(r['reaction'] for r in rows), ' s')} "
              f"| {fmt(median(r['wall'] for r in rows), ' s')} "
              f"| {fmt(median(r['calls'] for r in rows), '', 0)} "
              f"| {fmt(median(r['rate'] for r in rows), '', 0)} |")
    print()
    print("\n".join(notes))


# What an exit code tells CI.
SAID = {0: "0: success", 1: "1: failure", 3: "3: rolled back", 4: "4: needs a person"}


def last_line(run):
    """The last line a tool printed, on either stream."""
    lines = [line for line in (run["out"] + run["err"]).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def rollback_reaction(sb, name):
    """Seconds from the first failed task of the new revision to the start of the deployment
    that took the service back (deckhand's, the tool's, or the breaker's)."""
    service = sb.service("bench", name)
    listed = sb.call("ListServiceDeployments", {"cluster": "bench", "service": name})
    tasks = sb.call("ListTasks", {"cluster": "bench", "serviceName": name,
                                  "desiredStatus": "STOPPED"})["taskArns"]
    stops = []
    if tasks:
        described = sb.call("DescribeTasks", {"cluster": "bench", "tasks": tasks})["tasks"]
        stops = [t["stoppedAt"] for t in described
                 if t.get("stoppedAt") and "broken" in json.dumps(t["containers"])]
    if not stops:
        return None
    first_stop = min(stops)
    starts = [d.get("createdAt") for d in service["deployments"]] + \
        [d.get("createdAt") for d in listed.get("serviceDeployments", [])]
    later = [s for s in starts if s and s > first_stop]
    return min(later) - first_stop if later else None


def service_deployment_end(sb, cluster, name):
    """When the service's newest service deployment finished (epoch seconds), and its status."""
    listed = sb.call("ListServiceDeployments", {"cluster": cluster, "service": name})
    newest = max(listed["serviceDeployments"], key=lambda d: d["createdAt"])
    return newest.get("finishedAt"), newest["status"]


def strategy_rows(sb, deckhand, env, bed, prefix, config, image_of, runs):
    """Each tool deploys to its own fresh service that uses `config` from its second
    deployment on, `runs` times: a table's rows (verdict latency from ECS's finishedAt)."""
    print("| tool | exit | ECS's end | verdict latency | wall | ECS API calls "
          "| calls a minute watching |")
    print("|---|---|---|---|---|---|---|")
    for label, run in deploy_tools(deckhand, env, bed):
        rows = []
        for i in range(runs):
            name = f"{prefix}-{label.split()[0].replace(':', '')}-{i}"
            sb.create_service("bench", name, sb.register(name, bed["DECKHAND_TEST_BASE_IMAGE"]),
                              breaker=False)
            sb.wait_stable("bench", [name])
            sb.call("UpdateService", {"cluster": "bench", "service": name,
                                      "deploymentConfiguration": config})
            image = image_of(name)
            sb.calls(reset=True)
            sb.recorder.clear()
            r = run(sb, name, image, None)
            r["calls"] = sb.ecs_calls()
            r["rate"] = watch_rate(sb.recorder.calls(), r["ended"])
            finished, r["status"] = service_deployment_end(sb, "bench", name)
            r["latency"] = r["ended"] - finished if finished else None
            rows.append(r)
            sb.scale_to_zero("bench", name)
        print(f"| {label} | {sorted(set(r['code'] for r in rows))} "
              f"| {', '.join(sorted(set(r['status'] for r in rows)))} "
              f"| {fmt(median(r['latency'] for r in rows), ' s')} "
              f"| {fmt(median(r['wall'] for r in rows), ' s')} "
              f"| {fmt(median(r['calls'] for r in rows), '', 0)} "
              f"| {fmt(median(r['rate'] for r in rows), '', 0)} |")


def scenario_strategies(sb, deckhand, env, bed):
    runs = min(RUNS, 3)
    print(f"\n## A blue/green deploy (bake 1 min, in real time; {runs} runs each)\n")
    blue_green = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}

    def good(name):
        image = f"deckhand-bench/app:{name}"
        tag_image(env, bed["DECKHAND_TEST_BASE_IMAGE"], image)
        return image

    # A bake's minutes pass as ECS's do, so that a tool may foresee its end as it would on ECS;
    # the rest of the scenarios keep the sandbox's quicker time.
    real = Sandbox(deckhand, env, time_scale=1)
    try:
        strategy_rows(real, deckhand, dict(env, AWS_ENDPOINT_URL=real.api), bed, "bg",
                      blue_green, good, runs)
    finally:
        real.stop()
    print(f"\n## A crashing canary (10 %, canary bake 10 min, circuit breaker on; {runs} runs "
          "each)\n")
    canary = {"strategy": "CANARY",
              "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 10},
              "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    broken = broken_image(env)

    def crashing(name):
        image = f"deckhand-bench/broken:{name}"
        tag_image(env, broken, image)
        return image

    strategy_rows(sb, deckhand, env, bed, "canary", canary, crashing, runs)


CODEDEPLOY = "CodeDeploy_20141006."
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"


def code_deploy_service(sb, name, image):
    """Service `name` in cluster `bench` on the CODE_DEPLOY controller behind a load balancer
    (container `app`, port 80), with CodeDeploy application and deployment group `name`: all at
    once, no waits, CodeDeploy's automatic rollback on. Returns its first revision."""
    container = app_container(image, {"portMappings": [{"containerPort": 80}]})
    td = sb.call("RegisterTaskDefinition", {"family": name, "containerDefinitions": [container]})
    td = td["taskDefinition"]["taskDefinitionArn"]
    sb.call("CreateCluster", {"clusterName": "bench"})
    sb.call("CreateService", {
        "cluster": "bench", "serviceName": name, "taskDefinition": td, "desiredCount": 1,
        "deploymentController": {"type": "CODE_DEPLOY"},
        "loadBalancers": [{"targetGroupArn": f"{ELB}:targetgroup/{name}-blue/0123456789abcdef",
                           "containerName": "app", "containerPort": 80}]})
    sb.call(CODEDEPLOY + "CreateApplication", {"applicationName": name,
                                               "computePlatform": "ECS"})
    sb.call(CODEDEPLOY + "CreateDeploymentGroup", {
        "applicationName": name, "deploymentGroupName": name,
        "serviceRoleArn": "arn:aws:iam::123456789012:role/codedeploy",
        "deploymentStyle": {"deploymentType": "BLUE_GREEN",
                            "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        "blueGreenDeploymentConfiguration": {
            "terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE",
                                                          "terminationWaitTimeInMinutes": 0},
            "deploymentReadyOption": {"actionOnTimeout": "CONTINUE_DEPLOYMENT"}},
        "loadBalancerInfo": {"targetGroupPairInfoList": [{
            "targetGroups": [{"name": f"{name}-blue"}, {"name": f"{name}-green"}],
            "prodTrafficRoute": {"listenerArns": [
                f"{ELB}:listener/app/{name}/0123456789abcdef/0123456789abcdef"]}}]},
        "ecsServices": [{"serviceName": name, "clusterName": "bench"}],
        "autoRollbackConfiguration": {"enabled": True, "events": [
            "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]}})
    deadline = time.monotonic() + 120
    while not on_alone(sb, name, td):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {name}'s first task set did not settle")
        time.sleep(0.2)
    return td


def on_alone(sb, name, td):
    """Whether the service's one task set is PRIMARY, steady, on `td`, and all its tasks run."""
    sets = sb.service("bench", name).get("taskSets", [])
    return len(sets) == 1 and sets[0]["status"] == "PRIMARY" and \
        sets[0]["taskDefinition"] == td and sets[0].get("stabilityStatus") == "STEADY_STATE" \
        and sets[0]["runningCount"] == 1


def runs_on(sb, name, first):
    """What the service runs: its first revision alone, a newer one alone, or several (a
    DRAINING task set, deleted and carrying no traffic, not counted)."""
    sets = [t for t in sb.service("bench", name).get("taskSets", []) if t["status"] != "DRAINING"]
    if len(sets) != 1 or sets[0]["status"] != "PRIMARY":
        return "several task sets"
    return "the first revision" if sets[0]["taskDefinition"] == first else "the new revision"


def code_deploy_tools(deckhand, env, bed):
    """How each tool deploys `image` to CODE_DEPLOY service `name`: (label, runner)."""
    aws = [bed["DECKHAND_TEST_AWS_CLI"], "--region", "us-east-1", "--output", "json"]

    def with_deckhand(name, image):
        return measure([deckhand, "deploy", "--cluster", "bench", "--service", name,
                        "--container", "app", "--image", image, "--timeout", "10m"], env)

    def with_aws_cli(name, image):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "td.json"), "w") as f:
            json.dump({"family": name, "containerDefinitions": [
                app_container(image, {"portMappings": [{"containerPort": 80}]})]}, f)
        with open(os.path.join(d, "appspec.json"), "w") as f:
            json.dump({"version": 0.0, "Resources": [{"TargetService": {
                "Type": "AWS::ECS::Service", "Properties": {
                    "TaskDefinition": "<TASK_DEFINITION>",
                    "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 80}}}}]}, f)
        r = measure(aws + ["ecs", "deploy", "--cluster", "bench", "--service", name,
                           "--task-definition", os.path.join(d, "td.json"),
                           "--codedeploy-appspec", os.path.join(d, "appspec.json"),
                           "--codedeploy-application", name,
                           "--codedeploy-deployment-group", name], env)
        shutil.rmtree(d)
        return r

    def with_ecs_deploy(name, image):
        return measure([bed["DECKHAND_TEST_ECS_DEPLOY"], "deploy", "bench", name, "--image",
                        "app", image, "--timeout", "600", "--rollback"], env)

    return only_wanted([("deckhand", with_deckhand), ("aws CLI: ecs deploy", with_aws_cli),
                        ("ecs-deploy", with_ecs_deploy)])


def code_deploy_rows(sb, deckhand, env, bed, prefix, image_of, runs):
    """Each tool deploys `image_of(name)` to its own fresh CODE_DEPLOY service, `runs` times:
    a table's rows and a note of each tool's last line."""
    print("| tool | exit (what it said) | the deployment | CodeDeploy's rollback "
          "| the service runs, at exit | verdict latency | wall | API calls "
          "| calls a minute watching |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for label, run in code_deploy_tools(deckhand, env, bed):
        rows = []
        for i in range(runs):
            name = f"{prefix}-{label.split()[0].replace(':', '')}-{i}"
            first = code_deploy_service(sb, name, bed["DECKHAND_TEST_BASE_IMAGE"])
            sb.calls(reset=True)
            sb.recorder.clear()
            r = run(name, image_of(name))
            r["runs"] = runs_on(sb, name, first)
            listed = sb.call(CODEDEPLOY + "ListDeployments", {
                "applicationName": name, "deploymentGroupName": name})["deployments"]
            infos = [sb.call(CODEDEPLOY + "GetDeployment", {"deploymentId": d})["deploymentInfo"]
                     for d in listed]
            ours = [d["status"] for d in infos if d.get("creator") == "user"]
            back = [d["status"] for d in infos if d.get("creator") == "codeDeployRollback"]
            r["ours"] = ", ".join(ours) or "none"
            r["rollback"] = ", ".join(back) or "–"
            # From the newest end (the deployment's, or its rollback's) to the tool's exit.
            ends = [d["completeTime"] for d in infos if d.get("completeTime")]
            r["latency"] = r["ended"] - max(ends) if ends else None
            counted = sb.calls()
            r["calls"] = sum(v for k, v in counted.items() if k.count(".") == 1
                             and k.startswith(("ECS.", "CodeDeploy.")))
            calls = sb.recorder.calls()
            created = [t for t, op in calls if op == "CreateDeployment"]
            reads = [t for t, op in calls if created and t > created[0]
                     and op.startswith(("Describe", "List", "Get", "BatchGet"))]
            r["rate"] = len(reads) / (r["ended"] - created[0]) * 60 \
                if created and r["ended"] > created[0] else None
            rows.append(r)
            sb.call("UpdateService", {"cluster": "bench", "service": name, "desiredCount": 0})
        notes.append(f"- {label}, last line: `{last_line(rows[0])[:200]}`")
        codes = sorted(set(r["code"] for r in rows))
        states = sorted(set(r["runs"] for r in rows))
        print(f"| {label} | {', '.join(SAID.get(c, str(c)) for c in codes)} "
              f"| {', '.join(sorted(set(r['ours'] for r in rows)))} "
              f"| {', '.join(sorted(set(r['rollback'] for r in rows)))} "
              f"| {', '.join(states)} "
              f"| {fmt(median(r['latency'] for r in rows), ' s')} "
              f"| {fmt(median(r['wall'] for r in rows), ' s')} "
              f"| {fmt(median(r['calls'] for r in rows), '', 0)} "
              f"| {fmt(median(r['rate'] for r in rows), '', 0)} |")
    print()
    print("\n".join(notes))


def scenario_codedeploy(sb, deckhand, env, bed):
    runs = min(RUNS, 3)
    print(f"\n## A CodeDeploy blue/green service (CODE_DEPLOY controller, all at once; {runs} "
          "runs each)\n")

    def good(name):
        image = f"deckhand-bench/app:{name}"
        tag_image(env, bed["DECKHAND_TEST_BASE_IMAGE"], image)
        return image

    code_deploy_rows(sb, deckhand, env, bed, "cd-ok", good, runs)
    print(f"\n## A crashing replacement task set under CodeDeploy ({runs} runs each)\n")
    broken = broken_image(env)

    def crashing(name):
        image = f"deckhand-bench/broken:{name}"
        tag_image(env, broken, image)
        return image

    code_deploy_rows(sb, deckhand, env, bed, "cd-bad", crashing, runs)


def scenario_context(deckhand, env, bed):
    print("\n## Build context: time to the first build step, and the client's peak RSS\n")
    print("(a source tree of N files of 1 KiB, and a `node_modules` of 2N files excluded by "
          "`.dockerignore`; the same engine; the first step is `COPY src /src` starting under "
          "deckhand's BuildKit, `Step 1/` under the classic builder)\n")
    print("| files | deckhand: first step | deckhand: peak RSS | docker build: first step | "
          "docker build: peak RSS |")
    print("|---|---|---|---|---|")
    moto = dict(env, AWS_ENDPOINT_URL=bed["AWS_ENDPOINT_URL"])
    for n in (1000, 10000, 50000):
        tree = tempfile.mkdtemp(prefix=f"bench-ctx-{n}-")
        for d, count in (("src", n), ("node_modules/pkg", 2 * n)):
            for i in range(count):
                sub = os.path.join(tree, d, f"d{i // 1000}")
                os.makedirs(sub, exist_ok=True)
                with open(os.path.join(sub, f"f{i}.js"), "w") as f:
                    f.write("x" * 1024)
        with open(os.path.join(tree, "Dockerfile"), "w") as f:
            f.write(f"FROM {bed['DECKHAND_TEST_BASE_IMAGE']}\nCOPY src /src\n")
        with open(os.path.join(tree, ".dockerignore"), "w") as f:
            f.write("node_modules\n")
        ours, theirs = [], []
        for i in range(RUNS):
            ours.append(measure([deckhand, "push", "--repository", f"bench/ctx{n}", "--registry",
                                 bed["DECKHAND_TEST_REGISTRY"], "--create-repository", "--force",
                                 "--sha", f"{i:040x}", "--context", tree], moto,
                                marker="COPY src /src"))
            theirs.append(measure(["docker", "build", "-t", f"bench-ctx{n}:{i}", tree],
                                  dict(env, DOCKER_BUILDKIT="0"), marker="Step 1/"))
        shutil.rmtree(tree)
        print(f"| {n:,} | {fmt(median(r['marker'] for r in ours), ' s')} "
              f"| {fmt(median(r['rss'] for r in ours), ' MiB', 1)} "
              f"| {fmt(median(r['marker'] for r in theirs), ' s')} "
              f"| {fmt(median(r['rss'] for r in theirs), ' MiB', 1)} |")


def scenario_rerun(deckhand, env, bed):
    print("\n## Re-run with the SHA already pushed\n")
    print("| tool | wall | CPU | peak RSS |")
    print("|---|---|---|---|")
    moto = dict(env, AWS_ENDPOINT_URL=bed["AWS_ENDPOINT_URL"])
    app = tempfile.mkdtemp(prefix="bench-rerun-")
    with open(os.path.join(app, "Dockerfile"), "w") as f:
        f.write(f"FROM {bed['DECKHAND_TEST_BASE_IMAGE']}\nRUN echo built > /built\nCOPY . /app\n")
    with open(os.path.join(app, "app.txt"), "w") as f:
        f.write("app\n")
    registry = bed["DECKHAND_TEST_REGISTRY"]
    sha = "ab" * 20
    push = [deckhand, "push", "--repository", "bench/rerun", "--registry", registry,
            "--create-repository", "--sha", sha, "--context", app]
    measure(push, moto)  # the first push
    config = tempfile.mkdtemp(prefix="bench-docker-")
    docker_env = dict(env, DOCKER_CONFIG=config, DOCKER_BUILDKIT="0")
    subprocess.run(["docker", "login", registry, "-u", "AWS", "--password-stdin"],
                   input=bed["DECKHAND_TEST_REGISTRY_PASSWORD"], text=True, env=docker_env,
                   check=True, capture_output=True)
    ref = f"{registry}/bench/rerun-docker:{sha}"
    build = ["docker", "build", "-t", ref, app]
    measure(build, docker_env)
    measure(["docker", "push", ref], docker_env)
    ours = [measure(push, moto) for _ in range(RUNS)]
    theirs = [combine([measure(build, docker_env), measure(["docker", "push", ref], docker_env)])
              for _ in range(RUNS)]
    shutil.rmtree(app)
    shutil.rmtree(config)
    for label, rows in (("deckhand push (skips: the tag is there)", ours),
                        ("docker build (layer cache) + docker push", theirs)):
        print(f"| {label} | {fmt(median(r['wall'] for r in rows), ' s')} "
              f"| {fmt(median(r['cpu'] for r in rows), ' s')} "
              f"| {fmt(median(r['rss'] for r in rows), ' MiB', 1)} |")


def forget_locally(env, reference):
    """Deletes the engine's images of `reference` (a repository) and all its build cache, as on
    a new CI machine."""
    ids = subprocess.run(["docker", "image", "ls", "-q", "--filter", f"reference={reference}"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *ids], env=env, capture_output=True, check=True)
    subprocess.run(["docker", "builder", "prune", "-af"], env=env, capture_output=True,
                   check=True)


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=bench@example.invalid", "-c", "user.name=bench",
                    *args], cwd=cwd, check=True, capture_output=True)


# Builds with the registry's cache, in a row: enough to show how often the slow step is cached
# once the engine's inline cache metadata has been through fully cached builds.
WARM_RUNS = max(RUNS, 8)


def scenario_cache(deckhand, env, bed):
    print("\n## A fresh engine: a cold build against one with the registry's cache\n")
    print("(a context whose slow step, `RUN sleep 6` standing in for `bundle install`, is the same "
          "in every commit; before each build the engine's images of the repository and all its "
          "build cache are deleted, as on a new CI machine; each build is of a new commit that "
          "changes one copied file; the same engine and registry; the cached rows are "
          f"{WARM_RUNS} builds in a row)\n")
    print("| build | wall | slow step |")
    print("|---|---|---|")
    moto = dict(env, AWS_ENDPOINT_URL=bed["AWS_ENDPOINT_URL"])
    registry = bed["DECKHAND_TEST_REGISTRY"]
    app = tempfile.mkdtemp(prefix="bench-cache-")
    with open(os.path.join(app, "Dockerfile"), "w") as f:
        f.write(f"FROM {bed['DECKHAND_TEST_BASE_IMAGE']}\nRUN sleep 6 && echo slow > /slow\n"
                "COPY app.txt /app.txt\n")
    counter = {"n": 0}

    def new_commit():
        counter["n"] += 1
        with open(os.path.join(app, "app.txt"), "w") as f:
            f.write(f"change {counter['n']}\n")
        git(app, "add", "-A")
        git(app, "commit", "-q", "-m", f"change {counter['n']}")

    git(app, "init", "-q")
    new_commit()
    repo = "bench/cache"
    push = [deckhand, "push", "--repository", repo, "--registry", registry,
            "--create-repository", "--context", app]
    first = measure(push, moto, cwd=app)  # the image the next builds take their cache from
    if first["code"] != 0:
        raise SystemExit(f"bench: the first cached build failed:\n{first['err']}")

    def deckhand_build(extra):
        forget_locally(env, f"{registry}/{repo}")
        new_commit()
        return measure(push + extra, moto, cwd=app)

    def slow(run, cached_marker):
        return "cached" if cached_marker in run["err"] + run["out"] else "ran"

    rows = [("deckhand push --no-cache (cold)", [deckhand_build(["--no-cache"])
                                                  for _ in range(RUNS)], " ... CACHED"),
            ("deckhand push (cache from the last three SHA images in the registry)",
             [deckhand_build([]) for _ in range(WARM_RUNS)], "sleep 6 && echo slow > /slow ... CACHED")]
    config = bed.get("DECKHAND_BED_DOCKER_CONFIG")
    if config and os.path.exists(os.path.join(config, "cli-plugins", "docker-buildx")):
        docker_env = dict(env, DOCKER_CONFIG=config)
        subprocess.run(["docker", "login", registry, "-u", "AWS", "--password-stdin"],
                       input=bed["DECKHAND_TEST_REGISTRY_PASSWORD"], text=True, env=docker_env,
                       check=True, capture_output=True)
        ref = f"{registry}/bench/cache-buildx"

        def buildx(extra):
            forget_locally(env, ref)
            new_commit()
            return measure(["docker", "buildx", "build", "--progress", "plain", "--network",
                            "none", "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t",
                            f"{ref}:{counter['n']}", "--push", *extra, app], docker_env)
        buildx([])
        rows.append(("docker buildx build --no-cache + push (cold)",
                     [buildx(["--no-cache"]) for _ in range(RUNS)], " CACHED"))
        rows.append(("docker buildx build --cache-from type=registry + push",
                     [buildx(["--cache-from", f"type=registry,ref={ref}:{counter['n']}"])
                      for _ in range(WARM_RUNS)], " CACHED"))
    shutil.rmtree(app)
    for label, runs, marker in rows:
        failed = [r for r in runs if r["code"] != 0]
        if failed:
            raise SystemExit(f"bench: {label} failed:\n{failed[0]['err']}")
        cached = sum(1 for r in runs if slow(r, marker) == "cached")
        print(f"| {label} | {fmt(median(r['wall'] for r in runs), ' s')} "
              f"| cached in {cached} of {len(runs)} |")


def scenario_fleet(sb, deckhand, env, bed):
    print("\n## Many services watched at once (deckhand)\n")
    print("| services | wall | DescribeServices calls | services per DescribeServices | "
          "ListTasks calls | ECS calls in all |")
    print("|---|---|---|---|---|---|")
    for n in (1, 10, 50):
        cluster = f"fleet{n}"
        names = [f"s{i}" for i in range(n)]
        for name in names:
            sb.call("CreateCluster", {"clusterName": cluster})
            td = sb.register(f"{cluster}-{name}", bed["DECKHAND_TEST_BASE_IMAGE"])
            sb.call("CreateService", {"cluster": cluster, "serviceName": name,
                                      "taskDefinition": td, "desiredCount": 1})
        sb.wait_stable(cluster, names, limit=900)
        image = f"deckhand-bench/app:fleet{n}"
        tag_image(env, bed["DECKHAND_TEST_BASE_IMAGE"], image)
        sb.calls(reset=True)
        argv = [deckhand, "deploy", "--cluster", cluster, "--container", "app", "--image", image,
                "--timeout", "15m"]
        for name in names:
            argv += ["--service", name]
        r = measure(argv, env)
        counted = sb.calls()
        total = sum(v for k, v in counted.items() if k.startswith("ECS.") and k.count(".") == 1)
        describe = counted.get("ECS.DescribeServices", 0)
        named = counted.get("ECS.DescribeServices.services", 0)
        print(f"| {n} | {fmt(r['wall'], ' s')} | {describe} | {fmt(named / max(describe, 1), '', 1)} "
              f"| {counted.get('ECS.ListTasks', 0)} | {total} |")
        if r["code"] != 0:
            print(f"\n(deploy of {n} services exited {r['code']}: {r['err'][-500:]})\n")
        for name in names:
            sb.call("UpdateService", {"cluster": cluster, "service": name, "desiredCount": 0})


def scenario_startup(deckhand, env, bed):
    print("\n## Binary size and cold start (`--version`)\n")
    print("| tool | size | `--version` |")
    print("|---|---|---|")
    size = os.path.getsize(deckhand) / (1024 * 1024)
    rows = [("deckhand", f"{size:.1f} MiB (one static-ish binary)", [deckhand, "--version"]),
            ("aws CLI", "Python + botocore", [bed["DECKHAND_TEST_AWS_CLI"], "--version"]),
            ("ecs-deploy", "Python + boto3", [bed["DECKHAND_TEST_ECS_DEPLOY"], "--version"])]
    for label, size_text, argv in rows:
        walls = [measure(argv, env)["wall"] for _ in range(max(RUNS, 10))]
        print(f"| {label} | {size_text} | {fmt(median(walls) * 1000, ' ms', 0)} |")


def main():
    wanted = sys.argv[1:] or ["overhead", "late", "slow", "failure", "strategies", "codedeploy",
                              "context", "cache", "rerun", "fleet", "startup"]
    # One command: the bed (left as it is when it runs) and a release build when there is none.
    if not bed_running():
        subprocess.run([os.path.join(ROOT, "scripts/bed"), "up"], check=True,
                       stdout=subprocess.DEVNULL)
    env = bed_env()
    deckhand = os.environ.get("DECKHAND_BIN", os.path.join(ROOT, "target/release/deckhand"))
    if not os.path.exists(deckhand):
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    bed = env
    print(f"# deckhand benchmarks ({RUNS} runs each, medians)\n")
    print(f"machine: {os.cpu_count()} CPUs, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
          f"deckhand: {subprocess.run([deckhand, '--version'], capture_output=True, text=True).stdout.strip()}")
    sb = None
    if any(w in wanted for w in ("overhead", "late", "slow", "failure", "strategies", "codedeploy",
                                    "fleet")):
        sb = Sandbox(deckhand, env)
        env = dict(env, AWS_ENDPOINT_URL=sb.api)
    try:
        for w in wanted:
            if w == "overhead":
                scenario_overhead(sb, deckhand, env, bed)
            elif w == "late":
                scenario_late(sb, deckhand, env, bed)
            elif w == "slow":
                scenario_slow(sb, deckhand, env, bed)
            elif w == "failure":
                scenario_failure(sb, deckhand, env, bed)
            elif w == "strategies":
                scenario_strategies(sb, deckhand, env, bed)
            elif w == "codedeploy":
                scenario_codedeploy(sb, deckhand, env, bed)
            elif w == "context":
                scenario_context(deckhand, env, bed)
            elif w == "rerun":
                scenario_rerun(deckhand, env, bed)
            elif w == "fleet":
                scenario_fleet(sb, deckhand, env, bed)
            elif w == "cache":
                scenario_cache(deckhand, env, bed)
            elif w == "startup":
                scenario_startup(deckhand, env, bed)
            else:
                raise SystemExit(f"bench: unknown scenario {w}")
            sys.stdout.flush()
    finally:
        if sb:
            sb.stop()


if __name__ == "__main__":
    main()
