"""Measurement code behind `storm-hf benchmark`: model scales and settings, stage timing, memory probes, reports.

Not Hub code: nothing here is shipped with a model.
"""
