"""`gankit explore`: browse a trained generator in a local web page.

StyleGAN3's visualiser needs an OpenGL desktop and a GPU; a 64x64 generator
runs in milliseconds on a CPU, so a plain web page in any browser is enough.
`server` renders images on the machine that holds the generator and serves
the page in ``static/``; the page keeps its whole state in its own URL, so a
view can be bookmarked, shared, or opened by a test.
"""
