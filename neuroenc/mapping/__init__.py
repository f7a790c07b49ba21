"""neuroenc.mapping"""
