// The 3D view of a fit's report page (index.html): mesh.glb in three.js, orbit controls, one slider per
// expression shape (glTF morph target). The page carries its settings as JSON in #viewer-config; three.js
// itself is copied beside this file from the npm package cached at setup (ganfit_jax/outputs/page.py).
// A clip's page (cfg.animation = {video: element id, offset: seconds}) plays the GLB's animation in step with
// the page's <video> instead of showing sliders.
// State for tests and scripts: document.body.dataset.viewer = "loading" | "ready" | "error",
// window.ganfitViewer.setWeight(name, value), window.ganfitViewer.setTime(seconds) (animated GLBs).
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const cfg = JSON.parse(document.getElementById("viewer-config").textContent);
const box = document.getElementById("viewer");
const status = document.getElementById("viewer-status");
document.body.dataset.viewer = "loading";

function fail(message) {
  document.body.dataset.viewer = "error";
  status.textContent = "3D view unavailable: " + message;
}

let renderer;
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
} catch (e) {
  fail("this browser has no WebGL (" + e.message + "). The pictures below show the fit.");
  throw e;
}
const width = box.clientWidth || 480, height = box.clientHeight || 480;
renderer.setPixelRatio(window.devicePixelRatio || 1);
renderer.setSize(width, height);
box.appendChild(renderer.domElement);

const scene = new THREE.Scene();
scene.background = new THREE.Color(0.5, 0.5, 0.5);
scene.add(new THREE.HemisphereLight(0xffffff, 0x444444, 1.6));
const key = new THREE.DirectionalLight(0xffffff, 1.6);
key.position.set(0.3, 0.4, 1.0);
scene.add(key);
const camera = new THREE.PerspectiveCamera(25, width / height, 0.01, 10);
const controls = new OrbitControls(camera, renderer.domElement);
controls.addEventListener("change", render);

function render() {
  renderer.render(scene, camera);
}

let mesh = null;
let mixer = null, action = null;
const sliders = {};

function setTime(seconds) {
  // the action's own time, clamped into the clip (the mixer's clock would wrap or stop a finished action)
  if (!action) return false;
  const end = action.getClip().duration;
  action.time = Math.min(Math.max(seconds, 0), end > 0 ? end * (1 - 1e-6) : 0);
  mixer.update(0);
  render();
  return true;
}

function followVideo(video, offset) {
  const sync = () => setTime(video.currentTime - offset);
  video.addEventListener("seeked", sync);
  video.addEventListener("timeupdate", sync);
  const tick = () => {
    if (!video.paused) sync();
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

function setWeight(name, value) {
  const i = mesh && mesh.morphTargetDictionary ? mesh.morphTargetDictionary[name] : undefined;
  if (i === undefined) return false;
  mesh.morphTargetInfluences[i] = value;
  if (sliders[name]) {
    sliders[name].input.value = value;
    sliders[name].out.textContent = Number(value).toFixed(2);
  }
  render();
  return true;
}

function addSlider(parent, name, value) {
  const row = document.createElement("label");
  row.className = "slider";
  const text = document.createElement("span");
  text.textContent = name;
  const input = document.createElement("input");
  input.type = "range";
  input.min = cfg.weight_range[0];
  input.max = cfg.weight_range[1];
  input.step = 0.01;
  input.value = value;
  input.dataset.target = name;
  const out = document.createElement("output");
  out.textContent = Number(value).toFixed(2);
  input.addEventListener("input", () => setWeight(name, parseFloat(input.value)));
  row.append(text, input, out);
  parent.appendChild(row);
  sliders[name] = { input, out };
}

new GLTFLoader().load(cfg.glb, (gltf) => {
  scene.add(gltf.scene);
  gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetDictionary && !mesh) mesh = o; });
  const bounds = new THREE.Box3().setFromObject(gltf.scene);
  const centre = bounds.getCenter(new THREE.Vector3());
  const size = bounds.getSize(new THREE.Vector3()).length();
  controls.target.copy(centre);
  camera.position.set(centre.x, centre.y, centre.z + size * 1.6);
  camera.near = size / 100;
  camera.far = size * 10;
  camera.updateProjectionMatrix();
  controls.update();
  const animated = cfg.animation && gltf.animations.length > 0;
  if (animated) {
    mixer = new THREE.AnimationMixer(gltf.scene);
    action = mixer.clipAction(gltf.animations[0]);
    action.play();
    setTime(0);
    const video = document.getElementById(cfg.animation.video);
    if (video) followVideo(video, cfg.animation.offset || 0);
  }
  const main = document.getElementById("sliders-main");
  if (mesh && main) {
    const all = document.getElementById("sliders-all");
    const names = Object.keys(mesh.morphTargetDictionary);
    for (const n of cfg.main_targets) if (n in mesh.morphTargetDictionary) {
      addSlider(main, n, mesh.morphTargetInfluences[mesh.morphTargetDictionary[n]]);
    }
    for (const n of names) if (!(n in sliders)) {
      addSlider(all, n, mesh.morphTargetInfluences[mesh.morphTargetDictionary[n]]);
    }
    const fitted = names.map((n) => mesh.morphTargetInfluences[mesh.morphTargetDictionary[n]]);
    document.getElementById("weights-fitted").onclick = () => names.forEach((n, i) => setWeight(n, fitted[i]));
    document.getElementById("weights-neutral").onclick = () => names.forEach((n) => setWeight(n, 0));
  }
  render();
  status.textContent = animated ? "drag to turn, scroll to zoom; the face plays in step with the video"
    : mesh ? "drag to turn, scroll to zoom; the sliders move the expression shapes"
    : "drag to turn, scroll to zoom (this mesh has no expression shapes)";
  document.body.dataset.viewer = "ready";
}, undefined, (e) => fail("could not load " + cfg.glb + " (" + (e.message || e) + ")"));

window.ganfitViewer = { setWeight, setTime, render, scene, camera };
