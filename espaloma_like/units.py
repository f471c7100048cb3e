"""Unit conversion constants; the package works in OpenMM MD units inside.

Inside the package: nm, kJ/mol, radians, elementary charge, kJ/mol/nm for forces.
QM units (hartree, bohr) and reporting units (kcal/mol, angstrom) are converted only at the
edges, with these constants.
"""

from __future__ import annotations

#: CODATA 2018 values, as used by OpenMM and QCElemental.
HARTREE_TO_KJ_PER_MOL = 2625.4996394798254
BOHR_TO_NM = 0.0529177210903
NM_TO_BOHR = 1.0 / BOHR_TO_NM
ANGSTROM_TO_NM = 0.1
NM_TO_ANGSTROM = 10.0
KCAL_TO_KJ = 4.184
KJ_TO_KCAL = 1.0 / KCAL_TO_KJ
DEG_TO_RAD = 0.017453292519943295

#: Hartree/bohr -> kJ/mol/nm.
HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM = HARTREE_TO_KJ_PER_MOL / BOHR_TO_NM
#: kJ/mol/nm -> kcal/mol/angstrom.
KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A = KJ_TO_KCAL / NM_TO_ANGSTROM

#: Coulomb constant 1/(4 pi eps0) in kJ/mol nm e^-2, the value OpenMM uses.
ONE_4PI_EPS0 = 138.93545764438198

#: Boltzmann constant in kJ/mol/K.
BOLTZMANN_KJ_PER_MOL_K = 0.00831446261815324
