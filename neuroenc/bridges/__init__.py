"""Bridges to other toolkits: Brain-Score language (:mod:`neuroenc.bridges.brainscore`, the
optional extra ``pip install neuroenc[brainscore]``)."""
