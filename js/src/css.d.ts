// esbuild emits imported CSS as widget.css beside the bundle.
declare module "*.css";
