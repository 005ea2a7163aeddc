"""Fitting presets for tools/fit.py: ``--config=configs/fit.py:fast`` (default), ``:paper`` or ``:tiny``.

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut
  python tools/fit.py --image=x.jpg --out=o --config=configs/fit.py:paper --config.stages.full.weights.content=20

fast:  CPU-friendly: 100 landmark steps, 120 full steps, one texture initialisation; mode auto: the shipped
       regressor's prediction starts a fit of a third of those steps (GANFit++).
paper: the paper's schedule shape: Adam 0.01 on the texture, 300 + 1000 steps, 4 random texture
       initialisations run in parallel (vmap), the best final loss wins.
tiny:  a few steps and small outputs (128 px renders and texture), for tests.

Every field can be overridden with --config.FIELD=VALUE. The defaults of every loss weight, learning rate and
stage live here and nowhere else. Units (ganfit_jax.losses): images in [0, 1], identity terms 1 - cos,
content Eq. 10, landmark Eq. 12 in canvas pixels, align = mean squared landmark error in canvas/100 px,
regularisers = mean squares of the N(0, 1) coefficients (shape, texture latent), of the expression
activations and of the scaled light offsets (ganfit_jax.params); sparse_expression = mean |activation|;
light_chroma = variance across R, G, B of the light's colour and ambient.
"""

import ml_collections

PAPER_WEIGHTS = dict(identity=2.0, identity_hat=2.0, content=50.0, pixel=1.0, landmark=0.001,
                     reg_shape=0.05, reg_expression=0.01, reg_light=0.01)
# Priors retuned on synthetic BFM faces and DevTrain photos (WORKSPACE.md, "Fidelity experiments"): the
# paper's 0.05 lets landmarks push shape coefficients to 5 sigma and expressions to 1 on neutral faces.
PRIORS = dict(reg_shape=25.0, reg_expression=0.01, sparse_expression=20.0)
# In the full stage the identity and content terms carry shape (the paper's Table 1): a lighter shape prior
# there lets them move it (same-model synthetic faces: WORKSPACE.md, "Geometry"); the landmark stage keeps
# PRIORS (the 68 detected points alone bend the shape away from the person). A lighter expression prior there
# keeps the image terms from flattening the expression over the full stage's 120 steps (WORKSPACE.md, "Every
# issue-30 measure on one VM").
FULL_PRIORS = dict(PRIORS, reg_shape=1.0, sparse_expression=5.0)


def get_config(preset: str = "fast"):
  if preset not in ("fast", "paper", "tiny"):
    raise ValueError(f"unknown preset {preset!r}: use 'fast', 'paper' or 'tiny'")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.model = "ict"                  # asset name or a converted .npz (tools/convert_model.py)
  c.texture_model = "gan"          # 'gan' (shipped generator), 'pca' (baseline) or an exported .npz
  c.identity_net = "sface"         # asset name or a converted .npz (tools/convert_arcface.py)
  c.landmarks = "learned"          # where the detector's 68 points lie on the model: 'learned' (the correspondence
                                   # tools/learn_landmarks.py shipped for the model: the 68 learned on DevTrain
                                   # photos, the dense points on renders; sliding jaw), 'vertices' (the
                                   # model's hand-picked vertices, fixed jaw) or a correspondence .npz
  c.detector = "combined"          # face detector: 'combined' (YuNet's faces, dlib's points on near-upright
                                   # faces dlib also finds), 'yunet' (YuNet alone) or 'dlib' (frontal HOG alone)
  c.mode = "auto"                  # 'fit' (GANFit), 'regress' (Fast-GANFit: the regressor's prediction alone),
                                   # 'regress_fit' (GANFit++: the prediction starts a fit of regress_fit_scale x the
                                   # steps) or 'auto': regress_fit where the regressor was trained for this config's
                                   # model, texture model, identity network and canvas, else fit. fast: auto (GANFit++
                                   # matched or beat GANFit on 100 DevTest photos, WORKSPACE.md); paper, tiny: fit
  c.regressor = "regressor"        # asset name (the shipped ganfit_jax/weights/regressor_cpu.npz) or a .npz of
                                   # tools/train_regressor.py
  c.regress_fit_scale = 1 / 3
  c.regress_expression_floor = float("-inf")  # GANFit++: raise the prediction's expression logits to at least
                                   # this before the fit (-4: the fit's own neutral start, activation 0.018). The
                                   # network starts unused shapes at ~-11 (activation 2e-5), where a short fit's
                                   # Adam steps cannot bring them back: -4 recovers more expression on expressive
                                   # faces and adds spurious ones on neutral faces (WORKSPACE.md "Expressions that
                                   # cannot come back"); -inf (default): the prediction as it is
  c.regress_loss_terms = False     # 'regress': also evaluate the prediction's image loss terms (identity, content,
                                   # pixel: one render and two identity passes a photo, several times the prediction's
                                   # cost) for report.json; False: its landmark and regulariser terms only
  c.canvas_size = 224
  c.texture_size = 256             # side of the composed texture the renderer samples while fitting
  c.output_texture_size = 512      # side of texture.png and of the exports' texture
  c.texture_detail = True          # blend the photo's own texels into the fitted texture (texture.detail);
                                   # False: the texture model's output alone (the paper's result)
  c.detail_scale = 4               # side of the photo's detail crop in canvas sides (224 -> 896 px)
  c.export = "obj,glb,ply,arkit,html"  # files beside report.json and the pictures (tools/fit.py --export):
                                   # obj (+ mesh_neutral.obj), glb (morph targets), ply, arkit (arkit52.json),
                                   # html (index.html, the report page with a 3D view)
  c.render_size = 512              # render.png is rendered at this size, then placed in the photo's frame
  c.seed = 0
  c.chunk = 10                     # steps per compiled chunk (one host sync and progress update each)
  c.num_inits = 1
  c.init_latent_std = 1.0
  c.batch_size = 4                 # photos fitted together with --input_dir
  c.jaw_weight = 1.0               # weight of the 17 jaw-contour landmarks in the landmark terms (1 elsewhere); they
                                   # slide to the mesh's silhouette where learned (landmarks='learned'); 0.2 suits
                                   # landmarks='vertices' (fixed vertices against the photo's outline)
  c.dense = True                   # also detect MediaPipe's 478 face-mesh points (ganfit_jax/face/facemesh.py) and fit
                                   # them (the 'dense' term) where the model has their learned correspondence
  c.dense_iris_weight = 0.0        # weight of MediaPipe's 10 iris points in the dense term (1 elsewhere): the model's
                                   # eyeballs do not turn, so the irises would pull the eyelids
  c.landmark_confidence = False    # weight each landmark (68 and dense) by its learned confidence: the inverse
                                   # square of the detector's scatter around the model's point on renders of the
                                   # model (MorphableModel.landmark_scatter / dense_scatter;
                                   # objective.confidence_weights)
  # --video (ganfit_jax/video/clip.py): frames per per-frame fit (one compiled batch), landmark steps per batch,
  # and the zero-lag temporal smoother's sigma in frames (0: none)
  # photometric_steps > 0: after them, that many steps a batch with the full stage's image terms (identity,
  # content, pixel) and the light moving: the full-photometric mode (far slower; WORKSPACE.md "Video")
  # sparse_expression: the per-frame fits' sparse-expression weight (the identity fit keeps its stages'): with
  # the shape fixed from the keyframes, the landmark stage's 20 flattens what the face does (WORKSPACE.md "Video")
  c.video = ml_collections.ConfigDict(dict(batch=16, track_steps=120, smooth_frames=1.0, photometric_steps=0,
                                           sparse_expression=5.0))
  c.lr = ml_collections.ConfigDict(dict(shape=0.02, expression=0.05, texture=0.01, camera=0.01, focal=0.01,
                                        light=0.02))
  c.stage_order = ("align", "full")
  # each stage: steps, lr_scale, the groups that move, solver ('adam'; or 'newton' for stages without image
  # terms: damped Newton iterations, fitting.newton_step; measured in WORKSPACE.md "Geometry": better from
  # GANFit++'s start, saturates expressions from the mean face, so not the default), direction_groups (groups
  # whose Adam step follows the gradient's direction over the whole group instead of each coefficient's sign:
  # fitting.scale_by_adam_direction) and the loss weights
  c.stages = ml_collections.ConfigDict()
  c.stages.align = ml_collections.ConfigDict(dict(
      steps=100, lr_scale=3.0, groups=("shape", "expression", "camera", "focal"), solver="adam", direction_groups=(),
      weights=ml_collections.ConfigDict(dict(landmark=0.001, align=1.0, dense=1.0, **PRIORS))))
  c.stages.full = ml_collections.ConfigDict(dict(
      steps=120, lr_scale=1.0, groups=("shape", "expression", "texture", "camera", "focal", "light"), solver="adam",
      direction_groups=(),
      weights=ml_collections.ConfigDict(dict(PAPER_WEIGHTS, align=0.1, dense=0.1, light_chroma=20.0, **FULL_PRIORS))))
  if preset == "paper":
    c.mode = "fit"                 # the paper's GANFit schedule from the mean face
    c.stages.align.steps = 300
    c.stages.full.steps = 1000
    c.num_inits = 4
  elif preset == "tiny":
    c.mode = "fit"
    c.stages.align.steps = 20
    c.stages.full.steps = 4
    c.chunk = 4
    c.render_size = 128            # small outputs: what tests read of them does not need more
    c.output_texture_size = 128
    c.detail_scale = 1
    c.video.batch = 4
    c.video.track_steps = 10
  return c
