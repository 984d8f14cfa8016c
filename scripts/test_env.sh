# Sourced by scripts/test.sh and scripts/execute_notebooks.sh: the settings under which chapter
# outputs are made and compared. One thread per process makes float results independent of the
# machine's core count (a reduction split over two threads rounds differently), and the test
# command runs two processes side by side anyway.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"  # fail fast instead of retrying downloads offline
export MPLBACKEND=Agg
