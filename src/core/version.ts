// The package version, as a constant so browser bundles need no file access; a test keeps it equal
// to package.json's.
export const VERSION = '0.1.0';
