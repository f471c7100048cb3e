"""QM training data: records, labelling engines, and file formats.

* :mod:`espaloma_like.data.records`: :class:`~espaloma_like.data.records.QMRecord`, one molecule
  with its conformations, energies and forces in OpenMM units;
* :mod:`espaloma_like.data.engines`: xTB (tblite) and DFT (PySCF) labelling engines behind one
  interface;
* :mod:`espaloma_like.data.spice`: reading and writing the SPICE HDF5 layout;
* :mod:`espaloma_like.data.formats`: readers for other public formats (grappa ``.npz``, extended
  XYZ).

Nothing heavy is imported here: tblite, PySCF, h5py and RDKit are imported where they are used.
"""
