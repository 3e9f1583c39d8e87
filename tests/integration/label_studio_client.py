"""An annotator's session on a real Label Studio server through ``label-studio-sdk``, run by
tests/integration/test_label_studio.py with Label Studio's own venv (its python, not factory's).

    python label_studio_client.py URL TOKEN FOLDER EXPORT_JSON

Creates a project with FOLDER/config.xml, imports FOLDER/tasks.json (pre-annotations included),
annotates every task but the last (the model's choice, except the first task, flipped), then
writes the project's JSON export (all tasks, the unlabeled one too) to EXPORT_JSON and prints a
JSON summary on stdout.
"""
import json
import sys
from pathlib import Path

from label_studio_sdk import LabelStudio


def main(url: str, token: str, folder: str, export: str) -> None:
    ls = LabelStudio(base_url=url, api_key=token)
    folder_ = Path(folder)
    config = (folder_ / "config.xml").read_text()
    tasks = json.loads((folder_ / "tasks.json").read_text())
    project = ls.projects.create(title="factory labeling test", label_config=config)
    imported = ls.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)
    stored = sorted(ls.tasks.list(project=project.id, fields="all"), key=lambda t: t.id)
    choices = ["malignant", "benign"]
    labels = {}
    for i, task in enumerate(stored[:-1]):  # the last task stays unlabeled
        prediction = _plain(task.predictions[0]) if task.predictions else None  # the SDK's model, or a dict
        predicted = prediction["result"][0]["value"]["choices"][0] if prediction else choices[0]
        label = predicted if i else choices[1 - choices.index(predicted)]
        result = [{"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": [label]}}]
        ls.annotations.create(id=task.id, result=result, lead_time=2.5)
        labels[_plain(task.data)["row_id"]] = label
    raw = b"".join(ls.projects.exports.download_sync(project.id, export_type="JSON", download_all_tasks=True))
    Path(export).write_bytes(raw)
    print(json.dumps({"project": project.id, "imported": getattr(imported, "task_count", None),
                      "tasks": len(stored), "labels": labels, "unlabeled": _plain(stored[-1].data)["row_id"],
                      "predictions": sum(bool(t.predictions) for t in stored)}))


def _plain(item):
    """An SDK response object as plain dicts and lists (pydantic models have ``model_dump``)."""
    return item.model_dump() if hasattr(item, "model_dump") else item


if __name__ == "__main__":
    main(*sys.argv[1:5])
