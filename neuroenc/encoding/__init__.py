"""neuroenc.encoding"""
