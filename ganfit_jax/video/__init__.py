"""A video of one person (``tools/fit.py --video``): decode (:mod:`.decode`) -> track the 68 points frame by
frame (:mod:`.track`) -> one identity from keyframes, then camera and expression per frame
(:mod:`.clip`) -> the per-frame files and the animation (:mod:`.files`)."""
