"""What runs at serving time: the MLServer runtimes, their feature code and the scoring log.

Packaging copies this package into every MLServer model folder as ``cdl_serving``, so a folder
serves without the rest of this project (no Determined, no training code). Its modules import
only each other (relatively), numpy, torch or keras, nltk, psycopg and mlserver.
"""
