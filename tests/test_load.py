"""bench/load (`python -m bench.load`): figures and messages on synthetic data, a quick run against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from google.protobuf import json_format
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Delta_pb2 import Delta
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import harness
from bench.load import client, metrics, protocol
from bench.load.recording import MESSAGE_NAMES, Recording, load_recording
from bench.load.server import check_loopback, server_log_errors
from studio import serve

JSON_KEYS = {
    "sessions",
    "trainers",
    "errors",
    "stroke_p50_ms",
    "stroke_p99_ms",
    "first_page_p50_ms",
    "generator_cpu_cores",
    "server_peak_rss_mb",
    "knee_sessions",
}
QUICK_RUN_TIMEOUT = 300  # seconds for the whole --quick run on a busy 2-core machine


# --- figures ----------------------------------------------------------------------------------


def test_latency_summary_gives_percentiles_in_ms():
    seconds = [ms / 1000 for ms in range(1, 101)]  # 1..100 ms
    summary = metrics.latency_summary(seconds)
    assert summary["n"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.0, abs=0.05)
    assert summary["max_ms"] == pytest.approx(100.0)


def test_latency_summary_of_nothing_has_no_figures():
    assert metrics.latency_summary([]) == {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}


def test_knee_is_the_fewest_sessions_past_the_limit():
    steps = [(50, 3000.0), (10, 200.0), (35, 1200.0), (20, 400.0)]  # unordered on purpose
    assert metrics.find_knee(steps) == 35


def test_no_knee_when_every_step_stays_under_the_limit():
    assert metrics.find_knee([(10, 200.0), (20, 999.0)]) is None


def test_a_step_where_no_stroke_came_back_is_past_the_knee():
    assert metrics.find_knee([(10, 200.0), (20, None)]) == 20


def test_ramp_goes_on_until_the_target_step_even_past_the_knee():
    assert not metrics.ramp_should_stop([(10, 200.0), (20, 1500.0)], target_sessions=50)
    assert metrics.ramp_should_stop([(10, 200.0), (20, 1500.0), (50, 4000.0)], target_sessions=50)
    assert not metrics.ramp_should_stop([(10, 200.0), (50, 900.0)], target_sessions=50)


def test_ramp_steps_are_sorted_and_hold_the_target():
    assert metrics.ramp_steps([20, 10, 100], target=50) == [10, 20, 50, 100]
    assert len(metrics.ramp_steps(list(range(1, 40)), target=50)) == metrics.MAX_RAMP_STEPS


def test_training_busy_fraction_merges_overlapping_jobs_and_counts_a_running_one_to_the_end():
    log = metrics.TrainingLog(
        [
            {"started": 0.0, "ended": 4.0},
            {"started": 2.0, "ended": 5.0},  # overlaps the first
            {"started": None, "ended": 6.0},  # never trained: not counted
            {"started": 8.0, "ended": None},  # still training at the end
        ]
    )
    assert metrics.training_busy_fraction(log, 0.0, 10.0) == pytest.approx(0.7)  # 0-5 and 8-10


def test_other_processes_cpu_is_the_machine_minus_server_and_generator():
    start = metrics.Usage(wall=0.0, generator_cpu=1.0, server_cpu=10.0, system_busy=100.0)
    end = metrics.Usage(wall=10.0, generator_cpu=2.0, server_cpu=20.0, system_busy=125.0)
    usage = start.until(end)
    assert usage["generator_cpu_cores"] == pytest.approx(0.1)
    assert usage["server_cpu_cores"] == pytest.approx(1.0)
    assert usage["other_busy_cores"] == pytest.approx(1.4)  # (25 - 1 - 10) s over 10 s


def test_generator_over_half_a_core_marks_the_step_invalid():
    usage = {"wall_s": 10.0, "generator_cpu_cores": 0.6, "server_cpu_cores": 1.0, "other_busy_cores": 0.0}
    assert not metrics.step_figures(metrics.StepStats(5), usage, None)["valid"]
    assert metrics.step_figures(metrics.StepStats(5), {**usage, "generator_cpu_cores": 0.2}, None)["valid"]


def test_only_loopback_servers_are_driven():
    assert check_loopback("http://localhost:8501/") == "http://127.0.0.1:8501"
    with pytest.raises(SystemExit):
        check_loopback("http://example.org:8501")


def test_server_log_errors_finds_tracebacks():
    log = "ok\nTraceback (most recent call last):\n  File x\nValueError: bad\nfine\n"
    assert server_log_errors(log) == ["Traceback (most recent call last): ValueError: bad"]


# --- the page as the protocol shows it ----------------------------------------------------------


def delta(**element) -> Delta:
    return json_format.ParseDict({"newElement": element}, Delta())


def block(block_id: str) -> Delta:
    return json_format.ParseDict({"addBlock": {"id": block_id}}, Delta())


def test_the_prediction_heading_is_the_heading_inside_the_prediction_container():
    view = protocol.PageView()
    view.start_run(full=True)
    assert view.apply_delta((0, 1), delta(markdown={"body": "### Prediction: 1 (outside)"})) is None
    view.apply_delta((0, 2, 0), block("$$ID-abc-prediction"))
    heading = view.apply_delta((0, 2, 0, 0), delta(markdown={"body": "### Prediction: 7 (95.1%)"}))
    assert heading == "Prediction: 7 (95.1%)"
    assert view.apply_delta((0, 2, 0, 1), delta(markdown={"body": "a caption"})) is None
    assert protocol.predicted_digit(heading) == 7
    assert [protocol.verdict_of(h) for h in (heading, "Number: 17", "Not a digit: a line", "Draw a digit")] == [
        "7",
        "17",
        "Not a digit: a line",
        None,
    ]


def test_exceptions_and_error_alerts_are_problems_and_images_are_fetched():
    view = protocol.PageView()
    view.apply_delta((0, 0), delta(exception={"type": "ValueError", "message": "boom"}))
    view.apply_delta((0, 1), delta(alert={"body": "Cannot train", "format": "ERROR"}))
    view.apply_delta((0, 2), delta(alert={"body": "Queued", "format": "INFO"}))
    view.apply_delta((0, 3), delta(imgs={"imgs": [{"url": "/media/a.jpg"}]}))
    assert view.problems == ["exception: ValueError: boom", "st.error: Cannot train"]
    assert view.media == ["/media/a.jpg"]


def test_the_train_pages_job_title_gives_the_run_and_its_state():
    view = protocol.PageView()
    title = "**job-3 · cnn-bn-fast · 1 epoch · batch 256 · first 2,000 images** · training"
    view.apply_delta((0, 1, 1, 1, 0), delta(markdown={"body": title}))
    assert view.job == ("job-3", "training")
    assert "first 2,000 images" in view.job_title


def test_a_new_canvas_key_after_clear_is_the_same_widget():
    canvas = protocol.widget_selector("bidi_component", "", "$$ID-114d6c-canvas_0")
    assert canvas == protocol.widget_selector("bidi_component", "", "$$ID-7c99c7-canvas_3")
    assert protocol.widget_selector("button", "Clear", "$$ID-8786f7-None") != protocol.widget_selector(
        "button", "Start training", "$$ID-fb8368-None"
    )


# --- messages from the recording -----------------------------------------------------------------


@pytest.fixture(scope="module")
def recording() -> Recording:
    return load_recording()


def rendered(recording: Recording, new_ids: bool = True, fragment: str = "") -> protocol.PageView:
    """A page on which every recorded widget is rendered again, under a new id (as after Clear)."""
    view = protocol.PageView()
    for widget_id, selector in recording.widgets.items():
        view.widgets[selector] = widget_id.replace("$$ID-", "$$ID-new") if new_ids else widget_id
        if fragment:
            view.fragments[selector] = fragment
    return view


def test_the_recording_has_every_message_and_digits_the_browser_saw(recording):
    assert set(MESSAGE_NAMES) <= set(recording.messages)
    for drawing in recording.drawings:
        assert protocol.predicted_digit(drawing.strokes[-1].heading) == drawing.digit
        assert protocol.predicted_digit(drawing.browser_heading) == drawing.digit


def test_every_widget_the_recording_sends_can_be_found_again(recording):
    templates = list(recording.messages.values()) + [s.message for d in recording.drawings for s in d.strokes]
    for template in templates:
        for widget in template["rerunScript"].get("widgetStates", {}).get("widgets", []):
            assert widget["id"] in recording.widgets, widget["id"]


def test_a_stroke_goes_to_the_canvas_rendered_now_on_this_server(recording):
    template = recording.drawings[0].strokes[0].message
    msg = protocol.build_message(template, recording.widgets, rendered(recording), "http://127.0.0.1:9999")
    state = msg.rerun_script
    canvas = [w for w in state.widget_states.widgets if w.WhichOneof("value") == "json_value"]
    assert len(canvas) == 1 and canvas[0].id.startswith("$$ID-new")
    assert json.loads(canvas[0].json_value)["drawing"]["data"].startswith("data:image/png;base64,")
    assert state.context_info.url.startswith("http://127.0.0.1:9999/")
    assert not state.cached_message_hashes
    assert state.query_string == ""  # a new visitor's address, whatever the recording browser had


def test_a_session_sends_back_the_query_the_app_put_in_its_address(recording):
    template = recording.drawings[0].strokes[0].message
    view = rendered(recording)
    msg = protocol.build_message(template, recording.widgets, view, "http://127.0.0.1:9", query_string="visitor=abc")
    assert msg.rerun_script.query_string == "visitor=abc"
    assert msg.rerun_script.context_info.url.endswith("?visitor=abc")


def test_a_recorded_fragment_rerun_targets_the_fragment_the_widgets_are_in_now(recording):
    template = recording.messages["clear"]
    recorded = json_format.ParseDict(template, BackMsg()).rerun_script.fragment_id
    view = rendered(recording, fragment="fragment-now")
    msg = protocol.build_message(template, recording.widgets, view, "http://127.0.0.1:1")
    assert msg.rerun_script.fragment_id == ("fragment-now" if recorded else "")
    msg = protocol.build_message(template, recording.widgets, rendered(recording), "http://127.0.0.1:1")
    assert msg.rerun_script.fragment_id == ""  # the widgets are in no fragment now: a full rerun


def test_start_training_overrides_the_form_keeping_value_types(recording):
    overrides = {"cfg_train_limit": 3000, "cfg_epochs": 2}
    msg = protocol.build_message(
        recording.messages["train_start"],
        recording.widgets,
        rendered(recording),
        "http://127.0.0.1:1",
        overrides=overrides,
    )
    values = {protocol.user_key(w.id): w for w in msg.rerun_script.widget_states.widgets}
    for key, number in overrides.items():  # in the recorded widget's own value type (text box or number box)
        state = values[key]
        kind = state.WhichOneof("value")
        assert kind in ("string_value", "int_value"), kind
        assert getattr(state, kind) == (str(number) if kind == "string_value" else number)
    assert any(w.trigger_value for w in values.values())  # the button press itself


@pytest.mark.parametrize(
    ("now_type", "kind", "expected"),
    [("text_input", "text", ("string_value", "3000")), ("number_input", "int", ("int_value", 3000))],
)
def test_a_number_field_may_change_widget_type(recording, now_type, kind, expected):
    """st.number_input (int_value) and st.text_input (its text) hold the same number: either is the field."""
    view = rendered(recording)
    (recorded,) = [s for s in view.widgets if "|cfg_train_limit|" in s]
    renamed = now_type + "|" + recorded.split("|", 1)[1]
    view.widgets[renamed] = view.widgets.pop(recorded)
    view.value_kinds[renamed] = kind
    template = recording.messages["train_start"]
    overrides = {"cfg_train_limit": 3000}
    msg = protocol.build_message(template, recording.widgets, view, "http://127.0.0.1:1", overrides=overrides)
    (widget,) = [w for w in msg.rerun_script.widget_states.widgets if w.id.endswith("cfg_train_limit")]
    assert (widget.WhichOneof("value"), getattr(widget, widget.WhichOneof("value"))) == expected


def test_numbers_convert_between_their_widget_kinds():
    assert protocol.convert_value(2000, "text") == "2000"
    assert protocol.convert_value(0.02, "text") == "0.02"
    assert protocol.convert_value(0.0, "text") == "0"
    assert protocol.convert_value("2000", "int") == 2000
    assert protocol.convert_value("0.005", "float") == pytest.approx(0.005)


def test_a_widget_missing_from_the_page_is_protocol_drift(recording):
    view = rendered(recording)
    view.widgets.pop(next(s for s in view.widgets if s.startswith("bidi_component|")))
    with pytest.raises(protocol.ProtocolDrift, match="re-record"):
        protocol.build_message(recording.drawings[0].strokes[0].message, recording.widgets, view, "http://127.0.0.1:1")


def test_an_override_the_message_does_not_send_is_protocol_drift(recording):
    with pytest.raises(protocol.ProtocolDrift):
        protocol.build_message(
            recording.messages["open_train"], recording.widgets, rendered(recording), "http://127.0.0.1:1",
            overrides={"cfg_epochs": 1},
        )  # fmt: skip


def forward(payload: dict) -> ForwardMsg:
    return json_format.ParseDict(payload, ForwardMsg())


def stroke_run(run_id: str, status: str = "FINISHED_FRAGMENT_RUN_SUCCESSFULLY", digit: int = 3) -> list[dict]:
    """The ForwardMsgs of one stroke's run: start, the prediction container and heading, the end."""
    run = {"run": {"scriptRunId": run_id, "fragmentIds": ["f"]}}
    heading = {"newElement": {"markdown": {"body": f"### Prediction: {digit} (90.0%)"}}}
    return [
        {"metadata": run, "newSession": {}},
        {"metadata": {"deltaPath": [0, 1]}, "delta": {"addBlock": {"id": "$$ID-x-prediction"}}},
        {"metadata": {"deltaPath": [0, 1, 0]}, "delta": heading},
        {"metadata": run, "scriptFinished": status},
    ]


def waited(messages: list[dict]) -> client.Waiter:
    """Feed ForwardMsgs (one every 10 ms) to a session waiting for its message's run."""
    import asyncio
    import concurrent.futures

    async def scenario():
        session = client.Session("s", client.Target("http://127.0.0.1:1", None, None), lambda: metrics.StepStats(1))
        session.waiter = client.Waiter(0.0, asyncio.get_running_loop().create_future())
        for i, payload in enumerate(messages, start=1):
            session.take(forward(payload), i / 100)
        return session.waiter

    # On a thread of its own: when the browser tests ran first, Playwright's sync API keeps an event loop
    # running in this thread, and asyncio.run refuses to start a second one there.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario()).result()


def test_a_session_times_its_runs_heading_and_end():
    waiter = waited(stroke_run("r1"))
    assert waiter.heading == (0.03, "Prediction: 3 (90.0%)")
    assert waiter.done.result() == 0.04


def test_a_run_cut_short_by_another_rerun_is_not_the_one_waited_for():
    waiter = waited(stroke_run("r0", status="FINISHED_EARLY_FOR_RERUN", digit=1) + stroke_run("r1", digit=7))
    assert waiter.heading == (0.07, "Prediction: 7 (90.0%)")
    assert waiter.done.result() == 0.08


def test_a_session_keeps_the_address_query_the_app_sets():
    session = client.Session("s", client.Target("http://127.0.0.1:1", None, None), lambda: metrics.StepStats(1))
    session.take(forward({"pageInfoChanged": {"queryString": "visitor=tok"}}), 0.0)
    assert session.query_string == "visitor=tok"


# --- a quick run against a real server ----------------------------------------------------------------


def require_nginx() -> None:
    """studio.serve needs nginx: in CI (.ci/run installs it) its absence is a failure, elsewhere a skip."""
    if not serve.nginx_available():
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: .ci/run installs it (apt-get install nginx-light)")
        pytest.skip("nginx is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2], ids=["streamlit-run", "studio-serve-2"])
def test_quick_load_run_against_a_real_server(mnist_dir, tmp_path, processes):
    """Also the test of studio.serve's routing: with 2 backends, a session whose media requests or
    reruns reached the other process would get 404s or a page that never finishes (errors)."""
    if processes > 1:
        require_nginx()
    env = {"MNIST_DATA_DIR": str(mnist_dir), "MNIST_RUNS_DIR": str(tmp_path / "runs")}
    with harness.run_app(env, timeout=120, processes=processes) as server:
        command = [sys.executable, "-m", "bench.load", "--quick", "--json", "--url", server.url]
        command += ["--server-pid", str(server.process.pid)]
        done = subprocess.run(command, cwd=harness.REPO, capture_output=True, text=True, timeout=QUICK_RUN_TIMEOUT)
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert JSON_KEYS <= set(figures)
    assert figures["errors"] == 0
    assert figures["strokes"] > 0 and figures["stroke_p50_ms"] is not None
    assert all(protocol.verdict_of(f"Prediction: {v} (" if v.isdigit() else v) for v in figures["predictions"])
    assert sum(figures["predictions"].values()) == figures["strokes"]
    assert figures["first_page_p50_ms"] is not None
    assert figures["training_jobs_finished"] + (figures["training_busy_fraction"] or 0) > 0
    assert figures["generator_cpu_cores"] <= metrics.MAX_GENERATOR_CORES
    assert figures["server_peak_rss_mb"] > 0
