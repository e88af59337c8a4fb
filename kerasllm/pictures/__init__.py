"""Pictures of per-token numbers: what `kerasllm explain` and the training
run's TensorBoard show.

A picture is a list of panels (`panels.py`: tokens coloured by a value, an
attention heatmap, start/end probabilities with a span), drawn as one PNG
(`png.py`, matplotlib's Agg canvas) or one self-contained HTML page
(`html.py`). The panels are plain data: the per-kind explanations
(kerasllm/inference/explain.py) choose what to draw; nothing here knows about
models or runs, so this package sits low in the import layers (setup.cfg).

Example:
    from kerasllm.pictures.panels import Heatmap
    from kerasllm.pictures.png import render_png

    png = render_png([Heatmap("attention", "Attention", ["a", "b"], ["a", "b"], [[1, 0], [0.5, 0.5]])])
"""
