"""neuroenc.report"""
