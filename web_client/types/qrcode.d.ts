// qrcode-generator's own declarations describe a global and a CommonJS
// module; the page imports its ES module (/vendor/qrcode.mjs), whose
// default export is that factory.
/// <reference path="../node_modules/qrcode-generator/dist/qrcode.d.ts" />

declare const factory: QRCodeFactory;
export default factory;
