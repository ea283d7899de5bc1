# sweep-2's part of ../launch.sh, which sources it once `run`, M (sasrec-ml-1m) and B (sasrec-beauty) are
# defined: the time limit in minutes, the runs (name, config, --set overrides) and the seconds before the
# GPU snapshot. launch.sh with this file is the script the sweep ran.
LIMIT=${LIMIT:-4.0}
run m1-post-scale $M norm=post scale_items=true epochs=100
run m2-sasrecplus $M norm=query scale_items=true attn_dropout=0.1 windows=last lr_schedule=constant lr=0.001 warmup=0 clip=0 epochs=100 patience=5
run m3-query-scale-all $M norm=query scale_items=true attn_dropout=0.1 epochs=100
run m4-dim128 $M dim=128 dropout=0.2 epochs=100
run m5-dim256 $M dim=256 dropout=0.3 lr=0.001 epochs=100
run m6-post-scale-ad $M norm=post scale_items=true attn_dropout=0.1 dropout=0.2 epochs=100
run b3-post-scale $B scale_items=true
run b4-query-scale $B norm=query scale_items=true attn_dropout=0.1
SMI_AFTER=30
