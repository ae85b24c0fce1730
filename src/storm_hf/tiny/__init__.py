"""The tiny STORM the project trains and ships: recipe, training, evaluation and the demo's shipped model.

Trained from scratch on the synthetic temporal video QA data (`storm_hf.data`); docs/shipped-model.md has the
commands, the accuracy tables and what this model can and cannot understand.
"""
