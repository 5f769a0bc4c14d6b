"""Your model: the weight sharing of an uploaded .keras file, what the tie saves, and how each use pulls on it."""

import streamlit as st

from ui import keys, own_model, widgets
from ui.routing import frame
from ui.text import plain

frame()  # before anything else: see ui/routing.py

st.title("Your model")
st.markdown(
    "Upload a model saved with `model.save('model.keras')` to see what it shares. A **use** is one call "
    "of a Keras layer that reads a weight: a layer called twice is two uses of its kernel, and a "
    "`ReversibleEmbedding(tie_weights=True)` uses its table once to embed and once to read out logits. "
    "On one batch, each use's part of a shared weight's gradient is shown; the parts add up to the one "
    "gradient the tied weight gets. The same report in a terminal: `python -m sharecore inspect model.keras`; "
    "while your own `model.fit` trains: `sharecore.SharingMonitor`."
)

cap = own_model.cap_mb()
upload = st.file_uploader(
    f"A .keras model file (at most {cap} MB)",
    type=["keras"],
    key=keys.YOUR_MODEL_UPLOAD,
    max_upload_size=cap,
    help="Loaded with safe_mode=True: nothing in the file runs, and a Lambda layer is refused. "
    "The file is deleted from the server as soon as it has been inspected. The cap is the smaller of "
    "SHARECORE_MAX_MODEL_MB and Streamlit's server.maxUploadSize (.streamlit/config.toml); for a larger "
    "model, use `python -m sharecore inspect`.",
)
with st.expander("Batch and loss (optional)"):
    data = st.file_uploader(
        f"An .npz batch with arrays x and y (at most {cap} MB)",
        type=["npz"],
        key=keys.YOUR_MODEL_DATA,
        max_upload_size=cap,
        help="np.savez('batch.npz', x=x, y=y). Without one: a random batch of the model's input shape "
        f"(seed {own_model.SEED}) and random targets of its output shape.",
    )
    loss = st.selectbox(
        "Loss",
        own_model.LOSSES,
        key=keys.YOUR_MODEL_LOSS,
        format_func=lambda name: (
            name
            or "default: the loss the model was compiled with; else cross-entropy on logits for a language model "
            "or whole-number y, mean squared error otherwise"
        ),
    )

if upload is not None:
    with st.spinner("Loading and inspecting the model…"):
        batch, batch_name = (data.getvalue(), data.name) if data else (None, "")
        result = own_model.outcome(upload.name, upload.getvalue(), batch, loss, data_name=batch_name)
else:
    result = own_model.last()
    if result is not None:
        st.caption(f"The last model inspected in this session: {plain(result.name)}. Upload another to replace it.")

if result is None:
    st.info("Upload a .keras file to begin.")
elif result.problem is not None:
    st.error(f"Could not inspect {plain(result.name)}: {plain(result.problem)}")
else:
    found = result.inspection
    st.subheader(f"{plain(result.name)}: the Keras model {plain(repr(found.model_name))}")
    c1, c2, c3 = st.columns(3)
    c1.metric("Parameters stored", f"{found.stored_params:,}", help="model.count_params(): every weight once")
    c2.metric("If every use had its own copy", f"{found.untied_params:,}")
    c3.metric("The tie saves", f"{found.saved:,}")
    if found.shared.empty:
        st.info(
            "No weight of this model is read by more than one layer call: nothing is shared, so there is "
            "no gradient to split between uses."
        )
    else:
        st.markdown("**Shared weights and their uses**")
        widgets.data_table(found.shared)
        st.markdown(f"**Each use's part of the gradient** (loss: {plain(found.loss)})")
        widgets.data_table(found.gradients[["tensor", "use", "grad_norm", "sum_norm", "cosine_with_others"]])
        tensors = found.tensors
        tensor = tensors[0] if len(tensors) == 1 else st.selectbox("Shared weight", tensors, key=keys.YOUR_MODEL_TENSOR)
        widgets.chart(own_model.split_chart(result, tensor), key=keys.YOUR_MODEL_FLOW)
    for note in found.notes:
        st.caption(plain(note))
