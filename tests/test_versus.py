"""benchmarks/versus_official.py and its worker: every implementation that builds yields rows, the
ratios come from the same rounds, one that cannot build is recorded as skipped, and a worker that
dies is one line. This project's worker runs for real at the tiny size; the others are stand-ins
speaking the same protocol (torch and the peer live in other environments)."""
import subprocess
import sys
import textwrap

import pytest

from benchmarks import versus_official as versus
from benchmarks.versus_worker import serve

# a worker whose every call takes `seconds` (its first argument); with a second argument `single` it
# knows no multitask
FAKE = textwrap.dedent("""
    import json, sys
    seconds = float(sys.argv[1])
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "build":
            reply = ({"unsupported": "no multitask"} if request["multitask"] and sys.argv[2:] == ["single"] else
                     {"first_call_s": {"plan": 9.0, "update": 8.0}, "info": {"framework": "fake"}})
        else:
            reply = {"times": [seconds] * request["calls"]}
        print(json.dumps(reply), flush=True)
""")


@pytest.fixture
def fake(tmp_path):
    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE)
    workers = []

    def start(name: str, seconds: float, *extra: str) -> versus.Worker:
        workers.append(versus.Worker(name, [sys.executable, str(path), str(seconds), *extra]))
        return workers[-1]

    yield start
    for worker in workers:
        worker.request_quit()


def test_our_worker_and_a_stand_in_give_rows_for_both_calls_and_ratios_from_the_same_rounds(fake):
    argv, env = versus.worker_argv("ours", sys.executable, "unused")
    workers = [versus.Worker("ours", argv, env), fake("peer", 1.0, "single")]
    try:
        measurement = versus.measure(workers, "tiny", False, batch_size=8, rounds=2, calls=2)
    finally:
        workers[0].request_quit()
    assert {n: [len(r) for r in t["plan"]] for n, t in measurement["times"].items()} == {"ours": [2, 2], "peer": [2, 2]}
    assert measurement["info"]["ours"]["latent_dim"] == 16 and measurement["skipped"] == {}
    rows = versus.summarize(measurement, "tiny", False)
    assert sorted((r["implementation"], r["call"]) for r in rows) == [
        ("ours", "plan"), ("ours", "update"), ("peer", "plan"), ("peer", "update")]
    for row in rows:
        ours = [t for r in measurement["times"]["ours"][row["call"]] for t in r]
        assert row["calls"] == 4 and row["first_call_s"] > 0
        assert row["ratio_to_ours"] == pytest.approx(row["median_s"] / versus.spread(ours)["median_s"])
        assert len(row["round_ratios"]) == 2
    assert [r["ratio_to_ours"] for r in rows if r["implementation"] == "ours"] == [1.0, 1.0]


def test_ratios_pair_each_round_of_theirs_with_the_same_round_of_ours():
    measurement = {"first_call_s": {"ours": {"plan": 1.0}, "b": {"plan": 2.0}},
                   "times": {"ours": {"plan": [[1.0, 1.0], [2.0, 2.0]]}, "b": {"plan": [[3.0, 3.0], [4.0, 4.0]]}}}
    b = next(r for r in versus.summarize(measurement, 1, False) if r["implementation"] == "b")
    assert b["round_ratios"] == [3.0, 2.0] and b["median_round_ratio"] == 2.5
    assert b["ratio_to_ours"] == pytest.approx(3.5 / 1.5) and b["first_call_s"] == 2.0


def test_an_implementation_without_multitask_is_skipped_with_its_reason(fake):
    workers = [fake("ours", 0.5), fake("peer", 1.0, "single")]
    measurement = versus.measure(workers, 1, True, batch_size=8, rounds=1, calls=1)
    assert measurement["skipped"] == {"peer": "no multitask"} and list(measurement["times"]) == ["ours"]


def test_a_worker_that_dies_is_one_error_naming_it(tmp_path):
    worker = versus.Worker("official", [sys.executable, "-c", "import sys; sys.exit('no torch here')"])
    with pytest.raises(versus.WorkerError, match=r"the official worker exited \(no torch here"):
        worker.request({"op": "build", "size": 1, "multitask": False, "batch_size": 8})


def test_the_worker_answers_an_unknown_request_and_a_failing_one_in_one_line_and_stays_up():
    import io

    requests = io.StringIO('{"op": "jump"}\n{"op": "time", "what": "plan", "calls": 1}\n{"op": "quit"}\n')
    replies = io.StringIO()
    serve("ours", None, requests, replies)
    assert replies.getvalue().splitlines() == ['{"error": "unknown request \'jump\'"}',
                                               '{"error": "KeyError: \'plan\'"}']


@pytest.mark.parametrize("peer", ["peer", "peer_wide"])
def test_the_peer_worker_is_never_given_this_repository_on_its_path(peer):
    argv, env = versus.worker_argv(peer, "/peer/bin/python", "/official")
    assert "PYTHONPATH" not in env and argv[1].endswith("benchmarks/versus_worker.py") and "-m" not in argv
    _, env = versus.worker_argv("official", "/official/bin/python", "/official")
    assert env["PYTHONPATH"].split(":")[0] == str(versus.REPO)


def test_a_peer_installed_apart_gets_only_its_own_path_and_ours_keeps_the_given_one(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/wheels/site")
    _, env = versus.worker_argv("peer_wide", "/usr/bin/python3", None, "/tmp/peer_site")
    assert env["PYTHONPATH"] == "/tmp/peer_site"
    argv, env = versus.worker_argv("ours", "/usr/bin/python3", None)
    assert env["PYTHONPATH"].split(":") == [str(versus.REPO), "/wheels/site"] and argv[-1] == "ours"


def test_timing_the_official_code_without_its_checkout_is_one_line():
    done = subprocess.run([sys.executable, "-m", "benchmarks.versus_official", "--implementations=ours,official"],
                          capture_output=True, text=True, cwd=versus.REPO)
    assert done.returncode == 2 and done.stderr.strip() == "error: --official_repo is needed for official"


def test_the_official_console_lines_give_agent_steps_and_elapsed_seconds():
    from benchmarks.versus_loop import official_points

    console = ("\x1b[34meval\x1b[0m   E: 0   I: 0   R: 1.0   T: 0:00:03\n"
               " \x1b[32mtrain\x1b[0m        \x1b[34mE:\x1b[0m 6   \x1b[34mI:\x1b[0m 3,000   R: 12.5   "
               "\x1b[34mT:\x1b[0m 0:01:05\n noise\n train   E: 7   I: 3,500   R: 13.0   T: 1:00:00\n")
    assert official_points(console) == [(3000, 65.0), (3500, 3600.0)]


def test_loop_throughput_counts_from_the_first_episode_end_past_the_seed_phase():
    from benchmarks.versus_loop import steps_per_second

    points = [(500, 5.0), (2500, 20.0), (3000, 80.0), (3500, 90.0), (4000, 100.0)]
    assert steps_per_second(points, after=2500) == (1000 / 20.0, 1000)
    with pytest.raises(ValueError, match="fewer than two episode ends after agent step 3500"):
        steps_per_second(points, after=3500)
