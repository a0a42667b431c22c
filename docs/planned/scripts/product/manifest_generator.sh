#!/usr/bin/env bash
# Placeholder for seed 1.3's manifest_generator.sh, which the seed did not publish.
set -euo pipefail
echo "manifest_generator.sh: product ${COMPONENTS_TO_BUILD:-?} version ${PRODUCT_VERSION:-?} (build ${BUILD_ID:-?})"
