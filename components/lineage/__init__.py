"""Lineage of every pipeline step in ML Metadata, behind one small interface.

:mod:`components.lineage.store` holds the interface (``LineageStore``) and the records it takes;
:mod:`components.lineage.mlmd` the ML Metadata backend (``sqlite_store`` locally);
:func:`components.lineage.recording.record` is the one call a step makes, which never breaks a
run unless asked to.
"""
