#!/usr/bin/env bash
# Placeholder for seed 1.3's check_cloud_product_metadata.sh, which the seed did not publish.
set -euo pipefail
echo "check_cloud_product_metadata.sh: product ${COMPONENTS_TO_BUILD:-?} version ${PRODUCT_VERSION:-?} (build ${BUILD_ID:-?})"
