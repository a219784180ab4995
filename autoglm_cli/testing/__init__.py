"""Real stand-ins shared by the tests and the demo: a tiny model, a local hub server.

Nothing here fakes a feature: the tiny model is a real (random) Llama that
transformers loads and runs; the hub server speaks the Hugging Face Hub's HTTP
API so `huggingface_hub` itself runs against it.
"""
