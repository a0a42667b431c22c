#!/usr/bin/env bash
# Placeholder for seed 1.3's replace_config_content.sh, which the seed did not publish.
set -euo pipefail
echo "replace_config_content.sh: product ${COMPONENTS_TO_BUILD:-?} version ${PRODUCT_VERSION:-?} (build ${BUILD_ID:-?})"
