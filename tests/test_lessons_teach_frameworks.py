"""The lessons write the frameworks' own APIs out in code cells, before the course's shortcuts: a student who
finishes must be able to do the same without this package. Checked on the solutions and on the student versions."""
import nbformat
import pytest

from helpers import ROOT

# lesson -> framework -> calls that must appear in its code cells
OWN_CALLS = {
    "00_setup": {
        "pytorch": ["torch.cuda.is_available()", ".backward()"],
        "tensorflow": ['tf.config.list_physical_devices("GPU")', "GradientTape("],
    },
    "01_pretrained_models": {
        "pytorch": ["models.resnet50(", "ResNet50_Weights", ".transforms()"],
        "tensorflow": ["keras.applications.ResNet50(", "include_top=False", "preprocess_input"],
    },
    "02_feature_extraction": {
        "pytorch": ["ImageFolder(", "DataLoader(", "requires_grad = False", "optimizer.zero_grad()", "loss.backward()",
                    "optimizer.step()"],
        "tensorflow": ["image_dataset_from_directory(", "trainable = False", ".compile(", ".fit("],
    },
    "03_fine_tuning": {
        "pytorch": ["torch.optim.AdamW(", "loss.backward()", "optimizer.step()"],
        "tensorflow": ["tf.GradientTape(", "apply_gradients("],
    },
}
CASES = [(folder, lesson, fw) for folder in ("solutions", "lessons") for lesson in OWN_CALLS for fw in OWN_CALLS[lesson]]


@pytest.mark.parametrize("folder,lesson,framework", CASES, ids=lambda v: str(v))
def test_framework_calls_are_written_out(folder, lesson, framework):
    nb = nbformat.read(ROOT / folder / f"{lesson}_{framework}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    missing = [call for call in OWN_CALLS[lesson][framework] if call not in code]
    assert not missing, f"{folder}/{lesson}_{framework} never calls {missing} in a code cell"


@pytest.mark.parametrize("lesson", [lesson for lesson in OWN_CALLS if lesson != "00_setup"])
def test_lessons_evaluate_on_a_test_split(lesson):
    """Choosing happens on val; the lesson reports on the held-out test split."""
    for framework in ("pytorch", "tensorflow"):
        nb = nbformat.read(ROOT / "solutions" / f"{lesson}_{framework}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert '"test"' in code, f"{lesson}_{framework} never loads the test split"
        headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                    if line.startswith("## ")]
        assert any("test" in h.lower() for h in headings), f"{lesson}_{framework} has no section reporting on test"
