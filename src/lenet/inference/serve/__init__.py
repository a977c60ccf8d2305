"""The draw-a-digit web app and its JSON API (:mod:`lenet.inference.serve.app`, run by `lenet
serve`): ``app`` puts together ``limits`` (what a request may cost), ``inputs`` (reading one),
``answers`` (the work), ``security`` (headers, the Host check) and ``server`` (the socket and
uvicorn); ``digits`` is the page's digit (an upload's steps, the sliders), ``reading`` the
number it reads (POST /api/read), ``static/`` the page.

Importing this package imports nothing else: FastAPI and uvicorn load with
:mod:`lenet.inference.serve.app` and the modules it is made of, so the rest of lenet works
without the `serve` extra.
"""
