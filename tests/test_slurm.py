"""The Slurm jobs of slurm/: each parses with bash; under DRY_RUN=1 each prints, per node, commands whose accelerate
options, files and recipe options are the real ones (parsed with accelerate's loader and the recipe's own parser);
and run for real through stand-ins for srun, accelerate and vllm serve, each node runs what its dry run printed."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "slurm"
SFT_JOB, SYNTHESIS_JOB = SLURM / "sft.slurm", SLURM / "synthesize.slurm"
SFT_RECIPES = ROOT / "recipes" / "DeepWriter-8B" / "sft"
PAPER_SYNTHESIS = ROOT / "recipes" / "DeepWriting-20K" / "synthesis" / "config_paper.yaml"
HOSTS = ["gpu-node-07", "gpu-node-08", "gpu-node-09", "gpu-node-10"]

# Stand-ins, each a Python script: scontrol lists the job's hosts; srun runs its command once per node, in turn, with
# that node's SLURM_PROCID; accelerate records its command line (and, for the search, whether the node's generator
# answers); vllm serves /v1/models on its --port until it is stopped, and records that it was (or fails at once).
SCONTROL = """
print("\\n".join(HOSTS))
"""
SRUN = """
import os, subprocess
args = sys.argv[1:]
nodes = next(int(a.split("=")[1]) for a in args if a.startswith("--nodes="))
while args[0].startswith("--"):
    args.pop(0)
for rank in range(nodes):
    code = subprocess.call(args, env={**os.environ, "SLURM_PROCID": str(rank)})
    if code:
        sys.exit(code)
"""
ACCELERATE = """
import os, urllib.request
record = {"argv": sys.argv[1:], "rank": os.environ.get("SLURM_PROCID"), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
url = [a for a in sys.argv if a.startswith("http://localhost:")]
if url:
    record["server"] = json.load(urllib.request.urlopen(url[0] + "/models", timeout=10))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
"""
VLLM = """
import http.server, os, signal
if os.environ.get("FAKE_VLLM_FAILS"):
    sys.exit("CUDA out of memory")
args = sys.argv[1:]
port, name = int(args[args.index("--port") + 1]), args[args.index("--served-model-name") + 1]

class Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": name}], "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def stop(*_):
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps({"server_stopped": os.environ.get("SLURM_PROCID")}) + "\\n")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""


def parser_of(script: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{script}", ROOT / "recipes" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_parser()


@pytest.fixture
def fake_bin(tmp_path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    head = f"#!{sys.executable}\nimport json, sys\nHOSTS = {HOSTS!r}\n"
    for name, body in {"scontrol": SCONTROL, "srun": SRUN, "accelerate": ACCELERATE, "vllm": VLLM}.items():
        path = folder / name
        path.write_text(head + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def run_job(job: Path, fake_bin: Path, nodes: int, *args: str, dry: bool = True, **env: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ACCELERATE_", "MAIN_PROCESS_"))}
    environ.update(
        PATH=f"{fake_bin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}",
        SLURM_NNODES=str(nodes),
        SLURM_JOB_NODELIST="gpu-node-[07-10]",
        SLURM_JOB_ID="4242",
        DRY_RUN="1" if dry else "0",
        FAKE_LOG=str(fake_bin / "calls.jsonl"),
        **env,
    )
    return subprocess.run(
        ["bash", str(job), *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


def printed(stdout: str) -> list[list[str]]:
    """The commands a dry run printed, split as the shell splits them."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def launch_options(command: list[str], script: str) -> tuple[dict[str, str], list[str]]:
    """accelerate launch's options (before the script) and the recipe's (after it)."""
    start, end = command.index("launch") + 1, command.index(script)
    options = dict(zip(command[start:end:2], command[start + 1 : end : 2], strict=True))
    return options, command[end + 1 :]


def recipe_values(script: str, args: list[str]) -> dict:
    parsed = parser_of(script).parse_args_and_config(args)
    return {k: v for obj in parsed for k, v in vars(obj).items()}


@pytest.mark.parametrize("job", sorted(SLURM.glob("*.slurm")), ids=lambda p: p.name)
def test_job_scripts_parse(job):
    proc = subprocess.run(["bash", "-n", str(job)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert job.read_text().startswith("#!/bin/bash\n#SBATCH ")


@pytest.mark.parametrize("nodes", [1, 2, 3])  # 96 = 8 GPUs x nodes x per device x accumulation, for each recipe
@pytest.mark.parametrize("recipe", ["config_full", "config_full_fast", "config_lora"])
def test_sft_job_launches_every_node_and_keeps_the_global_batch(fake_bin, nodes, recipe):
    config = SFT_RECIPES / f"{recipe}.yaml"
    proc = run_job(SFT_JOB, fake_bin, nodes, str(config.relative_to(ROOT)), "--num_train_epochs", "1")
    assert proc.returncode == 0, proc.stderr
    commands = printed(proc.stdout)
    srun, launches = commands[0], commands[1:]
    assert srun[:2] == ["srun", f"--nodes={nodes}"] and "--ntasks-per-node=1" in srun
    assert len(launches) == nodes
    for rank, command in enumerate(launches):
        assert command[:2] == ["accelerate", "launch"]
        options, args = launch_options(command, "recipes/sft.py")
        assert options["--machine_rank"] == str(rank)
        assert options["--num_machines"] == str(nodes) and options["--num_processes"] == str(8 * nodes)
        assert options["--main_process_ip"] == HOSTS[0]
        accelerate_config = load_config_from_file(str(ROOT / options["--config_file"]))
        assert accelerate_config.distributed_type.value == "DEEPSPEED"
        assert accelerate_config.deepspeed_config["zero_stage"] == 3
        values = recipe_values("sft", [*args, "--use_cpu", "true"])
        assert Path(ROOT, args[args.index("--config") + 1]) == config
        assert values["num_train_epochs"] == 1  # the job's own options pass through
        assert 8 * nodes * values["per_device_train_batch_size"] * values["gradient_accumulation_steps"] == 96
    assert f"= 96 conversations per optimizer step; rendezvous {HOSTS[0]}:29500" in proc.stdout


def test_sft_job_refuses_a_node_count_that_breaks_the_global_batch(fake_bin):
    proc = run_job(SFT_JOB, fake_bin, 5, "recipes/DeepWriter-8B/sft/config_full.yaml")
    assert proc.returncode == 2 and "global batch 96 is not a multiple of 40 GPUs" in proc.stderr
    # an explicit accumulation is the user's choice, and kept
    proc = run_job(
        SFT_JOB, fake_bin, 5, "recipes/DeepWriter-8B/sft/config_full.yaml", "--gradient_accumulation_steps=3"
    )
    assert proc.returncode == 0, proc.stderr
    _, args = launch_options(printed(proc.stdout)[1], "recipes/sft.py")
    assert recipe_values("sft", [*args, "--use_cpu", "true"])["gradient_accumulation_steps"] == 3
    assert "5 node(s) x 8 GPUs x 1 per device x 3 accumulation steps = 120" in proc.stdout


@pytest.mark.parametrize("nodes", [1, 2])
def test_synthesis_job_serves_the_generator_and_shards_the_scorers(fake_bin, nodes):
    recipe = str(PAPER_SYNTHESIS.relative_to(ROOT))
    proc = run_job(SYNTHESIS_JOB, fake_bin, nodes, recipe, "--dataset_name", "data/pairs.jsonl")
    assert proc.returncode == 0, proc.stderr
    commands = printed(proc.stdout)
    assert commands[0][:2] == ["srun", f"--nodes={nodes}"]
    per_node = commands[1:]
    assert len(per_node) == 3 * nodes  # the server, its health check, the scorers
    for rank in range(nodes):
        serve, health, launch = per_node[3 * rank : 3 * rank + 3]
        server_gpus, scorer_gpus = serve[1], launch[1]
        assert serve[0] == launch[0] == "env" and serve[2:4] == ["vllm", "serve"]
        assert {server_gpus, scorer_gpus} == {"CUDA_VISIBLE_DEVICES=0,1,2,3", "CUDA_VISIBLE_DEVICES=4,5,6,7"}
        port = serve[serve.index("--port") + 1]
        assert serve[serve.index("--tensor-parallel-size") + 1] == "4"
        assert health == ["wait_for_server", f"http://localhost:{port}/v1/models"]
        options, args = launch_options(launch, "recipes/synthesize.py")
        assert options["--machine_rank"] == str(rank) and options["--main_process_ip"] == HOSTS[0]
        assert options["--num_machines"] == str(nodes) and options["--num_processes"] == str(4 * nodes)
        assert load_config_from_file(str(ROOT / options["--config_file"])).distributed_type.value == "MULTI_GPU"
        values = recipe_values("synthesize", args)
        assert values["generator_backend"] == "openai"
        assert values["generator_base_url"] == f"http://localhost:{port}/v1"
        assert (
            values["generator_model"] == serve[serve.index("--served-model-name") + 1] == "Qwen/Qwen2.5-32B-Instruct"
        )
        assert values["dataset_name"] == "data/pairs.jsonl"


def test_synthesis_job_needs_a_served_generator(fake_bin):
    proc = run_job(SYNTHESIS_JOB, fake_bin, 1, "recipes/demo/synthesize.yaml")
    assert proc.returncode == 2 and "needs openai" in proc.stderr
    proc = run_job(SYNTHESIS_JOB, fake_bin, 1, str(PAPER_SYNTHESIS), GENERATOR_TP="8")
    assert proc.returncode == 2 and "leaves no GPU" in proc.stderr


def calls(fake_bin: Path) -> list[dict]:
    return [json.loads(line) for line in (fake_bin / "calls.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sft_job_runs_each_node_through_srun(fake_bin):
    """Not a dry run: srun's tasks get the job's function and settings through the environment."""
    proc = run_job(SFT_JOB, fake_bin, 2, "recipes/DeepWriter-8B/sft/config_full.yaml", "--dry_run", dry=False)
    assert proc.returncode == 0, proc.stderr
    dry = run_job(SFT_JOB, fake_bin, 2, "recipes/DeepWriter-8B/sft/config_full.yaml", "--dry_run")
    expected = [command[2:] for command in printed(dry.stdout)[1:]]  # what each node runs after `accelerate launch`
    assert [c["argv"][1:] for c in calls(fake_bin)] == expected
    assert [c["rank"] for c in calls(fake_bin)] == ["0", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_synthesis_job_starts_waits_for_and_stops_each_server(fake_bin):
    """Not a dry run: on each node the generator server starts, its /v1/models answers before the scorers start,
    the scorers reach it at the URL they are given, and it is stopped when they end."""
    port = str(free_port())
    proc = run_job(
        SYNTHESIS_JOB,
        fake_bin,
        2,
        str(PAPER_SYNTHESIS),
        dry=False,
        VLLM_PORT=port,
        VLLM_LOG_DIR=str(fake_bin),
        SERVER_POLL="1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(f"generator served at http://localhost:{port}/v1/models") == 2
    records = calls(fake_bin)
    launches = [r for r in records if "argv" in r]
    assert [r["rank"] for r in launches] == ["0", "1"]
    for record in launches:
        assert record["gpus"] == "4,5,6,7" and record["server"]["gpus"] == "0,1,2,3"
        assert record["server"]["data"] == [{"id": "Qwen/Qwen2.5-32B-Instruct"}]
    assert [r["server_stopped"] for r in records if "server_stopped" in r] == ["0", "1"]
    assert len(list(fake_bin.glob("slurm-vllm-4242-*.log"))) == 1  # both nodes are this host here


def test_synthesis_job_fails_when_a_server_dies_before_serving(fake_bin):
    proc = run_job(
        SYNTHESIS_JOB,
        fake_bin,
        2,
        str(PAPER_SYNTHESIS),
        dry=False,
        VLLM_PORT=str(free_port()),
        VLLM_LOG_DIR=str(fake_bin),
        FAKE_VLLM_FAILS="1",
        SERVER_POLL="1",
    )
    assert proc.returncode != 0 and "the generator server exited before serving" in proc.stderr
    assert not (fake_bin / "calls.jsonl").exists()  # no scorer started
