"""How good a model is: the evaluation report and the judges it uses (classifier, FID/KID,
PSNR/SSIM, the pretrained-feature FD and ImageNet check), and reports compared side by side."""
