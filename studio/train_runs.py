"""The Train page's saved runs: the table, compared curves, rename/delete/download, the ensemble maker."""

from __future__ import annotations

import streamlit as st

from mnist.checkpoint import save_ensemble
from mnist.ensemble import MAX_MEMBERS, MIN_MEMBERS
from mnist.errors import MnistError
from mnist.records import ModelRef
from mnist.runs import checkpoint_file_bytes, delete_run, rename_run
from studio import dataset, disk_budget, insight_views, registry, share, visitor
from studio.charts import compare_figure
from studio.train_jobs import cached_history, ensemble_text
from studio.train_state import (
    COMPARE_KEY,
    DELETE_CONFIRM_KEY,
    DELETE_ERROR_KEY,
    ENSEMBLE_NAME_KEY,
    ENSEMBLE_PICK_KEY,
    ENSEMBLE_RESULT_KEY,
    MANAGE_RUN_KEY,
    RENAME_KEY,
)
from studio.views import run_row

MAX_COMPARED = 8


def read_runs(text: str) -> list[str]:
    """A link's comma-separated run names (a run name has no comma): saved runs this visitor can see."""
    names = [n for n in text.split(",") if n]
    visible = {r.name for r in registry.runs_list()}
    missing = [n for n in names if n not in visible]
    if not names or missing or len(names) > MAX_COMPARED:
        why = f"there is no saved run named {missing[0]} here" if missing else f"1 to {MAX_COMPARED} run names"
        raise ValueError(f"must name saved runs ({why})")
    return names


RUNS_PARAM = share.Param("runs", COMPARE_KEY, read_runs, ",".join, "Compare runs")


def ask_delete(name: str) -> None:
    st.session_state[DELETE_CONFIRM_KEY] = name


def cancel_delete() -> None:
    st.session_state.pop(DELETE_CONFIRM_KEY, None)


def refusal(name: str, verb: str) -> str | None:
    """Why this visitor may not change run `name` now (checked again at the click, not just by the button)."""
    run = next((r for r in registry.all_runs() if r.name == name), None)
    if run is None:
        return f"Could not {verb} {name}: it no longer exists."
    allowed = registry.run_access(run)
    return None if allowed.can_change else f"Could not {verb} {name}: {allowed.reason}."


def forget_run(name: str, new_name: str | None = None) -> None:
    """Drop (or follow, for a rename) this session's references to a run that was deleted or renamed."""
    if st.session_state.get(registry.ACTIVE_MODEL_KEY) == ModelRef.run(name):
        if new_name is None:
            st.session_state.pop(registry.ACTIVE_MODEL_KEY, None)  # back to the default model
        else:
            st.session_state[registry.ACTIVE_MODEL_KEY] = ModelRef.run(new_name)
    compared = st.session_state.get(COMPARE_KEY, [])
    st.session_state[COMPARE_KEY] = [new_name if n == name else n for n in compared if new_name or n != name]
    st.session_state[MANAGE_RUN_KEY] = new_name
    if new_name is None:
        st.session_state.pop(MANAGE_RUN_KEY, None)


def do_delete(name: str) -> None:
    st.session_state.pop(DELETE_CONFIRM_KEY, None)
    problem = refusal(name, "delete")
    if problem is None:
        try:
            delete_run(registry.runs_dir(), name)
        except MnistError as exc:
            problem = f"Could not delete {name}: {exc}"
    if problem:
        st.session_state[DELETE_ERROR_KEY] = problem
        return
    forget_run(name)


def do_rename(name: str) -> None:
    new_name = (st.session_state.get(RENAME_KEY) or "").strip()
    problem = refusal(name, "rename")
    if problem is None and new_name == name:
        problem = f"{name} already has that name: type a new one."
    if problem is None:
        try:
            rename_run(registry.runs_dir(), name, new_name)
        except MnistError as exc:
            problem = f"Could not rename {name}: {exc}"
    if problem:
        st.session_state[DELETE_ERROR_KEY] = problem
        return
    st.session_state[RENAME_KEY] = ""
    forget_run(name, new_name)


def manage_controls(run) -> None:
    """Rename and delete, for the run's maker only; everyone else sees who made it and why not."""
    name, allowed = run.name, registry.run_access(run)
    if not allowed.can_change:
        st.caption(f":material/lock: Made by {allowed.made_by}: you cannot rename or delete it ({allowed.reason}).")
        return
    with st.form("rename_run", border=False, enter_to_submit=True):
        st.text_input("New name", key=RENAME_KEY, placeholder=name, max_chars=100)
        st.form_submit_button("Rename", icon=":material/edit:", on_click=do_rename, args=(name,), width="stretch")
    if st.session_state.get(DELETE_CONFIRM_KEY) == name:
        st.warning(f"Delete `{name}`? Its folder and checkpoint are removed from disk.")
        yes, no = st.columns(2)
        yes.button("Yes, delete", type="primary", on_click=do_delete, args=(name,), width="stretch")
        no.button("Cancel", on_click=cancel_delete, width="stretch")
    else:
        st.button("Delete…", icon=":material/delete:", on_click=ask_delete, args=(name,), width="stretch")


def saved_runs() -> None:
    st.header("Saved runs", anchor=False)
    policy, policy_problem = registry.runs_policy()
    st.caption(f":material/group: {policy.description}")
    if limit := disk_budget.budget():
        st.caption(f":material/hard_drive: {disk_budget.policy_text(limit)}")
    if policy_problem:
        st.error(f"The server's run policy is misconfigured: {policy_problem}.")
    runs = registry.runs_list()
    if not runs:
        st.info("No saved runs yet. Every finished or stopped run is saved here.")  # its folder: the operator's log
        return
    st.dataframe(
        [run_row(r.name, r.record, registry.run_access(r).made_by) for r in runs],
        hide_index=True,
        width="stretch",
        column_config={
            "test accuracy %": st.column_config.NumberColumn(format="%.2f"),
            "lr": st.column_config.NumberColumn(format="%g"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "stopped early": st.column_config.CheckboxColumn("stopped", help="Stopped before its last epoch"),
        },
    )
    names = [r.name for r in runs]
    by_name = {r.name: r for r in runs}

    compare_col, manage_col = st.columns([2, 1], gap="large")
    with compare_col:
        if COMPARE_KEY not in st.session_state:
            st.session_state[COMPARE_KEY] = names[:2]
        st.session_state[COMPARE_KEY] = [n for n in st.session_state[COMPARE_KEY] if n in by_name]
        chosen = st.multiselect(
            "Compare runs",
            names,
            key=COMPARE_KEY,
            max_selections=MAX_COMPARED,
            placeholder="Choose runs",
            persist_state="session",  # kept while the visitor is on another page
        )
        if chosen:
            histories = {n: cached_history(str(by_name[n].path)) for n in chosen}
            st.plotly_chart(compare_figure(histories), key="compare")
            st.caption("A link that shows these curves:")
            st.code(share.link([RUNS_PARAM], {COMPARE_KEY: chosen}), language=None, wrap_lines=True)
    with manage_col:
        if st.session_state.get(MANAGE_RUN_KEY) not in by_name:
            st.session_state[MANAGE_RUN_KEY] = names[0]
        name = st.selectbox("Manage a run", names, key=MANAGE_RUN_KEY, persist_state="session")
        run = by_name[name]
        record = run.record
        st.caption(
            f"{record.model_text} · {record.metrics.accuracy_text(' test accuracy')} · {record.parameters:,} parameters"
            f" · made by {registry.run_access(run).made_by}"
        )
        if record.is_ensemble and (text := ensemble_text(record)):
            st.caption(text)
        is_active = st.session_state.get(registry.ACTIVE_MODEL_KEY) == run.ref
        st.button(
            "Active model" if is_active else "Make it the active model",
            icon=":material/check:",
            disabled=is_active,
            on_click=registry.set_active_model,
            args=(run.ref,),
            width="stretch",
        )
        try:
            weights = checkpoint_file_bytes(run.path)
        except MnistError as exc:
            st.error(str(exc))
        else:
            st.download_button(
                "Download model.safetensors",
                data=weights,
                file_name="model.safetensors",
                mime="application/octet-stream",
                icon=":material/download:",
                on_click="ignore",
                width="stretch",
                help="One file: the weights with the run's description embedded. Load it on the Sketch page.",
            )
        manage_controls(run)
        if DELETE_ERROR_KEY in st.session_state:
            st.error(st.session_state.pop(DELETE_ERROR_KEY))
    with st.expander(f"Training insight of {name}", icon=":material/visibility:"):
        insight_views.show_run_insight(run)
    ensemble_maker(runs)


def make_ensemble() -> None:
    """The Make the ensemble button's callback: the chosen runs' ensemble, measured and saved as a run."""
    chosen = list(st.session_state.get(ENSEMBLE_PICK_KEY) or [])
    name = (st.session_state.get(ENSEMBLE_NAME_KEY) or "").strip()
    state = dataset.get_data()
    try:
        if state.data is None:
            raise MnistError("it is measured on the MNIST test set, which is not available")
        members = [registry.get_checkpoint(ModelRef.run(n)) for n in chosen]
        path = save_ensemble(members, state.data, registry.runs_dir(), name or None, visitor.owner_id())
    except MnistError as exc:
        st.session_state[ENSEMBLE_RESULT_KEY] = (False, f"Could not make the ensemble: {exc}.")
        return
    why = ensemble_text(registry.get_checkpoint(ModelRef.run(path.name)).record)
    st.session_state[ENSEMBLE_RESULT_KEY] = (True, f"Saved the ensemble as `{path.name}`. {why}".rstrip())
    st.session_state[ENSEMBLE_PICK_KEY] = []
    st.session_state[ENSEMBLE_NAME_KEY] = ""
    st.session_state[MANAGE_RUN_KEY] = path.name


def ensemble_maker(runs) -> None:
    """Pick saved runs and save their ensemble (the mean of their probabilities) as a run of its own."""
    st.markdown("**Make an ensemble** of saved runs: it averages their probabilities and is saved as a run.")
    names = [r.name for r in runs]  # an ensemble chosen here adds its members
    st.session_state[ENSEMBLE_PICK_KEY] = [n for n in st.session_state.get(ENSEMBLE_PICK_KEY, []) if n in names]
    pick_col, name_col = st.columns([2, 1])
    chosen = pick_col.multiselect(
        "Runs to combine", names, key=ENSEMBLE_PICK_KEY, max_selections=MAX_MEMBERS, placeholder="Choose runs"
    )
    name_col.text_input("Ensemble name", key=ENSEMBLE_NAME_KEY, placeholder="optional: automatic")
    enough = len(chosen) >= MIN_MEMBERS
    if not enough:
        st.caption(
            f"Choose {MIN_MEMBERS} to {MAX_MEMBERS} runs (any architectures; an ensemble adds its members, "
            f"up to {MAX_MEMBERS} models in all)."
        )
    st.button(
        "Make the ensemble",
        icon=":material/stacks:",
        disabled=not enough,
        on_click=make_ensemble,
        key="make_ensemble",
        help="Measures it on the 10,000 test images (a second or two per run), then saves it; it is yours.",
    )
    if ENSEMBLE_RESULT_KEY in st.session_state:
        ok, message = st.session_state.pop(ENSEMBLE_RESULT_KEY)
        (st.success if ok else st.error)(message)
