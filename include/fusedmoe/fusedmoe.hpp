// fusedmoe: Mixture-of-Experts layers for LLM inference, through a modular kernel chosen by an oracle.
#pragma once

#include "fusedmoe/config.hpp"
#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"
#include "fusedmoe/error.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/layer.hpp"
#include "fusedmoe/log.hpp"
#include "fusedmoe/oracle.hpp"
#include "fusedmoe/platform.hpp"
#include "fusedmoe/router.hpp"
#include "fusedmoe/tensor.hpp"
#include "fusedmoe/version.hpp"
#include "fusedmoe/weights.hpp"
