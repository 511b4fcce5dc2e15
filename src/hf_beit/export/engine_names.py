"""The inference engines and precisions :func:`hf_beit.export.compile_for_engine` accepts (no imports: the CLI
parser uses them without loading torch)."""

ENGINES = ("openvino", "onnxruntime", "inductor")
ENGINE_PRECISIONS = ("fp32", "bf16", "int8")
