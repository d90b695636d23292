"""The report and the ``cnnkeras ui`` landing page, generated from a real small sweep, in headless Chromium."""

from __future__ import annotations

import io
import re
import textwrap

import pytest
from mlflow.tracking import MlflowClient

import cnnkeras

from .conftest import free_ports

pytestmark = pytest.mark.slow  # a real sweep, servers and a browser

EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A grid sweep (lr x batch x 2 seeds, 2 epochs on digits) with claims, and one run renamed to markup."""
    folder = tmp_path_factory.mktemp("report")
    path = folder / "lr-batch.yaml"
    path.write_text(textwrap.dedent(f"""
        name: lr-batch
        data: {{source: digits, subset: 400}}
        model:
          arch: sequential
          layers:
            - {{type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}}
            - {{type: global_avg_pool}}
        train: {{epochs: 2, batch_size: 32}}
        tracking: {{uri: "sqlite:///{folder / 'mlflow.db'}"}}
        search:
          n_trials: 8
          sampler: {{name: grid}}
          pruner: {{name: none}}
          parameters:
            train.optimizer.learning_rate: {{type: categorical, choices: [0.001, 0.05]}}
            train.batch_size: {{type: categorical, choices: [16, 64]}}
            seed: {{type: categorical, choices: [0, 1]}}
        report:
          claims:
            - claim: "Small <b>learning</b> rates overfit more"
              parameter: train.optimizer.learning_rate
              measure: final_gap_accuracy
              expect: decreasing
            - claim: "Small batches generalize better"
              parameter: train.batch_size
              measure: final_gap_accuracy
              expect: increasing
        """))
    result = cnnkeras.sweep(path, progress=False)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    first = result.trials[0]["user_attrs"]["mlflow_run_id"]
    client.update_run(first, name=EVIL)
    return folder, path, result


@pytest.fixture(scope="module")
def written(swept):
    folder, path, _ = swept
    (folder / "reports").mkdir(exist_ok=True)  # cnnkeras never makes the folders of a path it is given (issue 25)
    return cnnkeras.report(str(path), out=folder / "reports" / "lr-batch.html", mlflow_url="http://127.0.0.1:9")


def _non_blank(png: bytes) -> None:
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50


def test_report_states_each_claim_and_logs_itself_on_the_parent_run(swept, written):
    folder, _, result = swept
    assert written.runs == 8 and len(written.claims) == 2
    for claim in written.claims:
        assert claim.verdict in ("supported", "contradicted", "not distinguishable from noise")
        assert claim.n_runs == 8 and claim.n_replicates == 2 and "95% CI" in claim.sentence
    assert set(written.importances) == {"validation accuracy", "gap (train − val accuracy)"}
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    logged = {a.path for a in client.list_artifacts(result.parent_run_id, "reports")}
    assert logged == {"reports/lr-batch.html", "reports/claims.json"}


def test_the_console_and_the_report_rank_parameters_the_same(swept, written):
    """One importance function over the same finished trials: `cnnkeras sweep` prints what the report draws."""
    _, _, result = swept
    for console, report in (("best_val_accuracy", "validation accuracy"),
                            ("final_gap_accuracy", "gap (train − val accuracy)")):
        printed, drawn = result.importances[console], written.importances[report]
        assert printed.n_trials == drawn.n_trials == 8
        assert set(printed) == set(drawn) and len(printed) == 3
        for parameter, value in printed.items():
            assert drawn[parameter] == pytest.approx(value, abs=1e-9), parameter


def test_report_renders_in_chromium_and_shows_markup_as_text(written, page):
    page.page.goto(written.path.resolve().as_uri())
    page.page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=30000)
    page.page.wait_for_timeout(500)
    assert page.errors == [] and page.dialogs == []
    assert page.page.evaluate("window.__pwned") is None
    assert page.page.locator("#runs-table img").count() == 0
    titles = page.page.locator(".gtitle").all_text_contents()
    for expected in ("Small <b>learning</b> rates overfit more", "Small batches generalize better",
                     "Learning curves by learning_rate", "Learning rate x batch size",
                     "Generalization gap and validation accuracy against each swept parameter",
                     "Parameter importances: validation accuracy and gap"):
        assert expected in titles
    names = page.page.locator("#runs-table tbody tr td:first-child").all_inner_texts()
    assert EVIL in names  # the run name, as text
    link = page.page.locator("#runs-table tbody a").first.get_attribute("href")
    assert link.startswith("http://127.0.0.1:9/#/experiments/")
    assert "Small <b>learning</b> rates overfit more" in page.page.locator("#claims h3").first.inner_text()
    _non_blank(page.page.screenshot(full_page=True))


def test_report_shows_what_the_best_trials_predict(written, page, tmp_path):
    page.page.goto(written.path.resolve().as_uri())
    section = page.page.locator("#predictions")
    assert section.locator("h3").count() == 3  # the three best trials, best first
    values = [float(t.split()[-1]) for t in section.locator("h3 .hint").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    images = section.locator("img")
    assert images.count() == 6  # a confusion matrix and the most confident mistakes each
    page.page.wait_for_function("[...document.querySelectorAll('#predictions img')].every(i => i.naturalWidth > 200)")
    assert {images.nth(i).get_attribute("alt").split(" of ")[0] for i in range(6)} == {
        "confusion matrix", "most confident mistakes"}
    assert section.locator("h3 a").first.get_attribute("href").endswith("/model-metrics?workflowType=machine_learning")
    assert page.errors == []
    _non_blank(section.screenshot(path=str(_screenshot_path(tmp_path, "report-predictions.png"))))


def _screenshot_path(tmp_path, name):
    """Where a test keeps its screenshot: $CNNKERAS_SCREENSHOTS when set (to look at them), else its folder."""
    import os
    from pathlib import Path

    folder = Path(os.environ.get("CNNKERAS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_runs_table_sorts_by_a_clicked_column(written, page):
    page.page.goto(written.path.resolve().as_uri())
    header = page.page.locator("#runs-table th", has_text="final gap accuracy")
    column = page.page.locator("#runs-table th").all_inner_texts().index("final gap accuracy")
    header.click()
    values = [float(v) for v in page.page.locator(f"#runs-table tbody td:nth-child({column + 1})").all_inner_texts()]
    assert values == sorted(values)
    header.click()
    values = [float(v) for v in page.page.locator(f"#runs-table tbody td:nth-child({column + 1})").all_inner_texts()]
    assert values == sorted(values, reverse=True)


def test_landing_page_links_mlflow_optuna_dashboard_and_reports(swept, written, page):
    folder, _, _ = swept
    base = free_ports(4)
    running = cnnkeras.api.ui(root=folder, uri=f"sqlite:///{folder / 'mlflow.db'}", port=base,
                              reports=folder / "reports", wait=False)
    try:
        running.wait_ready()
        p = page.page
        p.goto(running.landing)
        assert p.title() == "cnnkeras dashboards"
        mlflow_href = p.locator("#link-mlflow").get_attribute("href")
        optuna_href = p.locator(".link-optuna").first.get_attribute("href")
        assert p.locator(".link-optuna").first.inner_text() == "lr-batch"
        p.locator(".link-report", has_text="lr-batch").click()
        p.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=30000)
        assert "Overfitting report: lr-batch" in p.title()
        assert page.errors == []

        assert mlflow_href == "/mlflow/" and optuna_href == f"http://127.0.0.1:{base}/dashboard/"  # one port
        p.goto(running.landing.rstrip("/") + mlflow_href)
        p.wait_for_function("document.title.includes('MLflow')", timeout=60000)
        p.get_by_text("lr-batch").first.wait_for(timeout=60000)  # the experiment is listed

        p.goto(optuna_href)
        p.get_by_text("lr-batch").first.wait_for(timeout=60000)  # optuna-dashboard lists the study
    finally:
        running.stop()


def test_runs_frame_of_a_study_and_the_report_command(swept, tmp_path):
    import subprocess
    import sys

    folder, path, _ = swept
    frame = cnnkeras.runs_frame(str(path))
    assert len(frame) == 8 and set(frame["trial_state"]) == {"COMPLETE"}  # the study's trials, no parent
    assert {"param.train.optimizer.learning_rate", "final_gap_accuracy", "onset_epoch"} <= set(frame.columns)
    out = tmp_path / "cli.html"
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "report", str(path), "--out", str(out),
                           "--color-by", "train.batch_size"], capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "Small batches generalize better:" in done.stdout and f"report on 8 runs: {out}" in " ".join(
        done.stdout.split())
    assert "Learning curves by batch_size" in out.read_text()
    wrong = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "report", str(path), "--color-by", "train.l2"],
                           capture_output=True, text=True, cwd=folder)
    assert wrong.returncode == 2 and "is not a swept parameter" in wrong.stdout + wrong.stderr


def test_report_on_a_plain_mlflow_experiment_infers_what_was_swept(swept, tmp_path):
    folder, _, _ = swept
    result = cnnkeras.report("lr-batch", uri=f"sqlite:///{folder / 'mlflow.db'}", out=tmp_path / "exp.html",
                             log_to_parent=False)
    assert result.runs == 8 and result.claims == []  # no config, so no claims: only the plots and tables
    assert set(next(iter(result.importances.values()))) == {"train.optimizer.learning_rate", "train.batch_size",
                                                             "seed"}
    page = (tmp_path / "exp.html").read_text()
    assert "Learning rate x batch size" in page and "MLflow experiment lr-batch" in page


@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM"])
def test_ui_command_serves_until_ctrl_c_or_sigterm_and_then_stops_everything(swept, stop_signal):
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    folder, _, _ = swept
    base = free_ports(4)
    import threading

    process = subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "ui", "--port", str(base), "--root", str(folder),
                                "--reports", str(folder / "reports"), "--uri", f"sqlite:///{folder / 'mlflow.db'}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               # as from a terminal: a job started in the background (nohup, `&` in a
                               # script, some CI runners) inherits SIGINT ignored, and Ctrl-C is then off
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    output: list[str] = []  # read as it comes: a full pipe would block the servers' logging
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120
        while True:
            try:  # the MLflow UI, through the landing page's own port
                with urllib.request.urlopen(f"http://127.0.0.1:{base}/mlflow/health", timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert process.poll() is None and time.time() < deadline, "".join(output)
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/", timeout=5) as answer:
            assert b"cnnkeras dashboards" in answer.read()
        process.send_signal(getattr(signal, stop_signal))
        try:
            assert process.wait(timeout=60) == 0, "".join(output)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the CLI dumps every thread's stack (faulthandler)
            time.sleep(2)
            raise AssertionError("cnnkeras ui did not stop within 60 s:\n" + "".join(output)[-6000:]) from None
        for url in (f"http://127.0.0.1:{base}/", f"http://127.0.0.1:{base + 1}/mlflow/health"):  # all closed
            try:
                urllib.request.urlopen(url, timeout=2)
                raise AssertionError(f"{url} still answers")
            except OSError:
                pass
    finally:
        if process.poll() is None:
            process.kill()


def test_optuna_dashboard_is_read_only(swept):
    import json
    import urllib.error
    import urllib.request

    import optuna

    folder, path, _ = swept
    base = free_ports(4)
    from cnnkeras.dashboards.server import serve

    running = serve(root=folder, port=base, mlflow=False, reports=folder / "reports")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/api/studies", timeout=10) as answer:
            studies = json.loads(answer.read())["study_summaries"]
        study_id = studies[0]["study_id"]
        for method, url, body in (("DELETE", f"/api/studies/{study_id}", None),
                                  ("POST", "/api/studies", b'{"study_name": "x", "directions": ["minimize"]}'),
                                  ("POST", f"/api/studies/{study_id}/rename", b'{"study_name": "renamed"}')):
            request = urllib.request.Request(f"http://127.0.0.1:{base}{url}", data=body, method=method)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 405
        journal = next(folder.rglob("*.journal"))
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["lr-batch"]
    finally:
        running.stop()


def test_bound_to_every_interface_the_landing_page_links_back_to_the_browsers_address(swept):
    import urllib.request

    import optuna

    from cnnkeras.dashboards.server import serve

    folder, _, _ = swept
    other = folder.parent / f"other-{folder.name}.journal"
    optuna.create_study(study_name="other", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(other))))
    base = free_ports(4)
    running = serve(root=folder, host="0.0.0.0", port=base, mlflow=False, reports=folder / "reports",
                    storages=[str(other), "postgresql+psycopg://team:hunter2-pw@127.0.0.1:9/optuna"])
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{base}/", headers={"Host": f"localhost:{base}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            page = answer.read().decode()
        assert "0.0.0.0" not in page
        assert f'href="http://localhost:{base}/dashboard/"' in page  # the first storage, on the landing port
        assert f'href="http://localhost:{base + 2}/dashboard/"' in page  # the second, on a port of its own
        assert "hunter2-pw" not in page and "team:***@127.0.0.1:9" in page and "(unreadable: " in page
    finally:
        running.stop()


def _ag_column(page, column):
    """The cells of one column of MLflow's runs table, in the order it shows them."""
    return page.evaluate("""(column) => {
        const cells = {};
        document.querySelectorAll('.ag-row').forEach(row => {
            const cell = row.querySelector(`.ag-cell[col-id="${column}"]`);
            if (cell) cells[Number(row.getAttribute('row-index'))] = cell.innerText.trim();
        });
        return Object.keys(cells).sort((a, b) => a - b).map(k => cells[k]);
    }""", column)


def _no_genai(page):
    assert page.get_by_text("Ask a question").count() == 0  # the assistant panel is closed
    assert page.get_by_text("Detect Issues").count() == 0 and page.get_by_text("No data available").count() == 0


def test_the_landing_page_lists_each_sweep_and_its_links_open_mlflow_on_its_trials(swept, written, browser, tmp_path):
    from cnnkeras.studies.study import load_study
    from cnnkeras.tracking import to_mlflow

    folder, path, result = swept
    study = load_study(cnnkeras.load_config(path))
    base = free_ports(4)
    running = cnnkeras.api.ui(root=folder, uri=f"sqlite:///{folder / 'mlflow.db'}", port=base,
                              reports=folder / "reports", wait=False)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # a first visit: nothing in storage
    try:
        running.wait_ready()
        p = context.new_page()
        p.goto(running.landing)
        row = p.locator('#sweeps-table tr[data-study="lr-batch"]')
        cells = row.locator("td").all_inner_texts()
        best = max(t.values[0] for t in study.trials if t.state.name == "COMPLETE")
        assert cells[:7] == ["lr-batch", "finished", "8/8", "0", "0", "0", "best_val_accuracy max"]
        assert cells[7].startswith(f"{best:.4f} trial ") and cells[8].endswith(" UTC")
        assert row.locator("a").all_inner_texts() == ["runs", "compare", "optuna", "report"]
        p.screenshot(path=str(_screenshot_path(tmp_path, "landing.png")), full_page=True)

        with p.context.expect_page() as opened:  # MLflow's own front page, then the experiment, as a user would
            p.locator("#link-mlflow").click()
        mlflow_page = opened.value
        mlflow_page.wait_for_function("document.title.includes('MLflow')", timeout=60000)
        experiment = study.user_attrs["mlflow_experiment_id"]
        mlflow_page.goto(f"{running.landing.rstrip('/')}/mlflow/#/experiments/{experiment}")
        mlflow_page.wait_for_function("document.title.startsWith('Runs')", timeout=60000)  # the runs, not GenAI
        mlflow_page.get_by_text("sweep-lr-batch").first.wait_for(timeout=60000)  # its parent run, trials nested
        _no_genai(mlflow_page)

        runs = p.locator('tr[data-study="lr-batch"] a.sweep-runs').get_attribute("href")
        p.goto(running.landing.rstrip("/") + runs)
        p.get_by_text("trial-1").first.wait_for(timeout=60000)  # (trial 0 was renamed to markup above)
        objective = f"metrics.`{to_mlflow('best_val_accuracy')}`"
        p.wait_for_function("(c) => document.querySelectorAll(`.ag-cell[col-id=\"${c}\"]`).length >= 8", arg=objective,
                            timeout=60000)
        values = [float(v) for v in _ag_column(p, objective)]
        assert len(values) == 8 and values == sorted(values, reverse=True)  # its trials, best first
        assert len(_ag_column(p, f"metrics.`{to_mlflow('final_gap_accuracy')}`")) == 8  # the gap as a column
        for key in ("train.optimizer.learning_rate", "train.batch_size", "seed"):  # the swept parameters
            assert len(_ag_column(p, f"params.`{key}`")) == 8, key
        _no_genai(p)
        p.screenshot(path=str(_screenshot_path(tmp_path, "mlflow-sweep-runs.png")))

        compare = p.context.new_page()
        compare.goto(running.landing.rstrip("/") + runs.replace("viewStateShareKey=", "x=").split("&x=")[0]
                     + "&compareRunsMode=CHART&viewStateShareKey=cnnkeras-lr-batch-compare")
        compare.get_by_text("Parallel Coordinates").first.wait_for(timeout=60000)
        assert compare.get_by_text("Sweep lr-batch").count() >= 1
        compare.wait_for_timeout(1500)
        compare.screenshot(path=str(_screenshot_path(tmp_path, "mlflow-sweep-compare.png")))

        trial = study.best_trial.user_attrs["mlflow_run_id"]
        run_page = p.context.new_page()
        run_page.goto(f"{running.landing.rstrip('/')}/mlflow/#/experiments/{experiment}/runs/{trial}/model-metrics"
                      "?workflowType=machine_learning")
        run_page.wait_for_function("/\\npredictions\\s*\\(2\\)/.test(document.body.innerText)", timeout=60000)
        text = run_page.evaluate("document.body.innerText")
        sections = dict(re.findall(r"^(\w+)\s*\((\d+)\)$", text, flags=re.M))  # section name -> its charts
        assert {"accuracy", "loss", "predictions", "summary", "test"} <= set(sections), sections
        # the training sample (train), Keras' running value (train_running), validation and the gap together
        assert sections["accuracy"] == "4" and sections["predictions"] == "2"
        run_page.get_by_text("predictions", exact=True).first.scroll_into_view_if_needed()
        run_page.wait_for_function("[...document.querySelectorAll('img')].filter(i => i.naturalWidth > 50).length >= 2",
                                   timeout=60000)  # the confusion matrix and the mistakes, as MLflow images
        run_page.screenshot(path=str(_screenshot_path(tmp_path, "mlflow-run-sections.png")))
    finally:
        context.close()
        running.stop()


def test_the_landing_page_follows_a_running_sweep(browser, tmp_path):
    import optuna

    journal = tmp_path / "live" / ".cnnkeras" / "live.journal"
    journal.parent.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="live", storage=storage, direction="maximize")
    study.set_user_attr("config", {"search": {"n_trials": 3, "objectives": [{"metric": "best_val_accuracy",
                                                                             "direction": "maximize"}]}})
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    base = free_ports(4)
    from cnnkeras.dashboards.server import serve

    running = serve(root=tmp_path / "live", port=base, mlflow=False, reports=tmp_path / "reports")
    context = browser.new_context()
    try:
        p = context.new_page()
        p.goto(running.landing)
        row = p.locator('#sweeps-table tr[data-study="live"]')
        assert row.locator("td").nth(1).inner_text() == "stopped" and row.locator("td").nth(2).inner_text() == "1/3"
        asked = study.ask()  # a sweep takes its next trial
        p.wait_for_function("document.querySelector('tr[data-study=\"live\"] td.state').innerText === 'running'",
                            timeout=40000)
        study.tell(asked, 0.9)
        p.wait_for_function("document.querySelector('tr[data-study=\"live\"] td:nth-child(8)').innerText"
                            ".startsWith('0.9000 trial 1')", timeout=40000)  # its best so far, without a reload
        assert row.locator("td").nth(2).inner_text() == "2/3"
    finally:
        context.close()
        running.stop()
