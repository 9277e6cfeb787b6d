"""Load test without a browser: many Streamlit sessions speak the app's own websocket protocol on localhost.

Why no browser: the old version ran 20 Chromium contexts on the same 2 cores as the server and so
measured its own browser. Here each session is one websocket to `/_stcore/stream` sending the
protobuf BackMsgs a real Chromium sent (recorded by `--record`, stored in bench/recorded/) and
reading the server's ForwardMsgs, so the generator costs a few percent of one core.

Why plain asyncio + `websockets` and not Locust: a Locust user is a gevent greenlet built around
request/response timing, while here one user is a long-lived socket whose answer to a message is a
stream of ForwardMsgs, timed from the send to one particular delta (the prediction heading) and to
`script_finished`. Locust would add its runner, stats and monkey-patching (gevent plus a sync
websocket client) on the core the generator must leave to the server; one asyncio loop with
`websockets` (already a Streamlit dependency) keeps 50-100 sockets on one core with no extra
machinery, and the timing code is ours either way.

What the sessions do (every message is a recorded one; widget ids are taken from the session's
latest render, so a new canvas key after Clear, or a reordered page, still works):

  sketchers  (--sessions)  open the app (Sketch); then, every --stroke-interval seconds on average
                           (uniform in 0.5x..1.5x), send the next stroke of a recorded digit; after a
                           digit's last stroke, Clear. The images of each prediction (/media/...) are
                           fetched like a browser does. Now and then (--revisit) a session leaves and
                           a new one arrives, so first-page times are also measured under load.
  trainers   (--trainers)  open Train, press "Start training" (the fast preset with --train-images
                           images for --train-epochs epochs), follow the page's 1 s auto-refresh like
                           a browser (AutoRerun ForwardMsg -> fragment rerun BackMsg) until the run
                           finishes, and start the next one: a training job runs during the whole test.

Figures, per step and for the run:
  stroke -> prediction  from sending the stroke's BackMsg to receiving the Delta whose markdown is
                        the "### Prediction: D (P%)" heading inside the container keyed `prediction`
                        (its block's id ends in "-prediction"; the heading is a child of its path)
  first page            from opening the socket to script_finished of the session's first run
  errors                an exception element or st.error on a page, a compile error, page-not-found,
                        a disconnect, a timeout, a run that never finishes, a media fetch that fails,
                        a failed or stopped training job, a prediction whose digit differs from the
                        recorded browser's, a traceback in the server's log
  generator CPU         this process's CPU seconds / wall seconds (cores); over 0.5 -> INVALID
  server                CPU cores (its CPU seconds / wall), peak RSS (VmHWM) and sampled RSS
  other processes       machine busy cores minus the server's and the generator's (others share it)

Each session is closed-loop, like a user who waits for the prediction: its next message goes out only
when the previous run has finished. Below the knee replies come well within the 2 s between strokes,
so this changes nothing; past it, strokes go out late, each timed from its real send, and the achieved
stroke rate falls below the offered one (both reported): figures past the knee are lower bounds.

Default run: a ramp of steps (--ramp 10,20,35,50,75,100 sessions, each --step-seconds long, fresh
sessions per step, the trainers running throughout). The headline figures are those of the step
with --sessions sessions (50); the knee is the first step whose stroke p99 passes 1 s (the ramp
stops after it, once the --sessions step is done). --no-ramp runs the --sessions step only.

  python -m bench.load [--sessions 50] [--trainers 1] [--ramp 10,20,...] [--step-seconds 40] [--json]
  python -m bench.load --quick [--json]      # CI smoke run: 4 sessions + 1 trainer, about 25 s
  python -m bench.load --record              # re-record bench/recorded/ from a real Chromium session
  python -m bench.load --browser             # correctness: 5 Chromium sessions draw digits
  python -m bench.load --url http://127.0.0.1:PORT --server-pid PID   # drive a server already running

Modules: protocol (BackMsgs built, ForwardMsgs read), recording (the replayed messages, --record), client
(one session's websocket), scenario (sketchers, trainers, the ramp), metrics (percentiles, knee, CPU, RSS),
report (headline and table), browser_check (--browser), server (runs folder, log, loopback), cli (main).

--json: the output ends with ONE JSON line (sessions, trainers, errors, stroke_p50_ms, stroke_p99_ms,
first_page_p50_ms, generator_cpu_cores, server_peak_rss_mb, knee_sessions and more). Exit code 1 when
there were errors. Traffic goes to 127.0.0.1 only.
"""

from bench.load.cli import main, parse_args
from bench.load.report import headline
from bench.load.scenario import run_load
from bench.load.server import server_env, server_log_errors

__all__ = ["headline", "main", "parse_args", "run_load", "server_env", "server_log_errors"]
