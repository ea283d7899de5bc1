# sweep-1's part of ../launch.sh, which sources it once `run`, M (sasrec-ml-1m) and B (sasrec-beauty) are
# defined: the time limit in minutes, the runs (name, config, --set overrides) and the seconds before the
# GPU snapshot. launch.sh with this file is the script the sweep ran.
LIMIT=${LIMIT:-6.3}
run m1-cos150 $M epochs=150
run m2-cos250 $M epochs=250
run m3-const1e-3 $M lr_schedule=constant lr=0.001 epochs=1000 patience=20
run m4-cos150-drop02 $M epochs=150 dropout=0.2
run m5-last-cos250 $M windows=last epochs=250
run m6-cos150-lr1e-3 $M epochs=150 lr=0.001
run b1-dim128 $B dim=128
run b2-cos100-lr5e-4 $B epochs=100 lr=0.0005
SMI_AFTER=45
