"""SBML kinetic models: compiled rate laws, the homeostatic ground truth and frozen models.

Needs the optional ``sysid[sbml]`` extra (python-libsbml, libroadrunner); the
libraries are imported only when an SBML function is called.
"""
