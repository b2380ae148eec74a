#!/usr/bin/env node
import '../dist/rowdoctor.js';
